"""`python -m search dashboard` in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by selenium) loads the dashboard of a small study made with the
stand-in worker, finds the trials listed, opens a trial's text artifacts from their links and
checks the browser shows them as text (served with a text content type, not as downloads).

Skips, saying why, where Chromium, its driver or selenium is missing (.ci/run installs them
when it can).
"""
from __future__ import annotations

import json
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from search.cli import main
from search.runner import REPO_ROOT

pytestmark = pytest.mark.browser

FAKE_WORKER = Path(__file__).with_name("fake_trial_worker.py")
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and Path(p).is_file()), None)
DRIVER = next((p for p in (shutil.which("chromedriver"), "/usr/bin/chromedriver") if p and Path(p).is_file()), None)
WAIT_S = 30


def _missing() -> str | None:
    if CHROMIUM is None:
        return "no Chromium (apt-get install chromium chromium-driver)"
    if DRIVER is None:
        return "no chromedriver (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "no selenium (pip install selenium)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _until(what: str, probe, timeout: float = WAIT_S):
    """probe() until it returns something true (bounded); that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.25)


@pytest.fixture
def dashboard(work):
    """A two-trial study (artifacts included) and `search dashboard` serving it: its base URL."""
    fake = shlex.join([sys.executable, str(FAKE_WORKER), "--fake-mode", "ok"])
    assert main(["tune", "--work-dir", str(work), "--model", "encoder", "--trials", "2", "--grid", "1x16",
                 "--no-progress", "--worker-command", fake]) == 0
    port = _free_port()
    log = work.parent / "dashboard.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "search", "dashboard", "--work-dir", str(work),
                                 "--port", str(port)], cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            pytest.fail(f"the dashboard exited with {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/api/studies", timeout=2) as r:
                return json.load(r)["study_summaries"]
        except OSError:
            return None
    try:
        studies = _until("the dashboard answering", up)
        yield url, studies[0]["study_id"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def browser(tmp_path):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    # a download (what an artifact with the wrong content type becomes) must not land in the tree
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def test_trials_listed_and_text_artifacts_open_as_text(browser, dashboard):
    from selenium.webdriver.common.by import By

    url, study_id = dashboard
    browser.get(f"{url}/dashboard/studies/{study_id}/trials")
    body = _until("the trial list", lambda: (lambda t: t if "Trial 1" in t else None)(
        browser.find_element(By.TAG_NAME, "body").text))
    assert "Trial 0" in body and "Complete" in body

    # the selected trial's artifact cards: one download link per file, named by its file name
    def links():
        found = {a.get_attribute("download"): a.get_attribute("href")
                 for a in browser.find_elements(By.CSS_SELECTOR, "a[download][href*='/artifacts/']")}
        return found if {"build.log", "config.yaml", "eval.txt", "result.json"} <= set(found) else None
    artifacts = _until("the trial's artifact links", links)

    expected = {"build.log": "fake build of encoder", "config.yaml": "model: encoder",
                "eval.txt": "latency(ms)", "result.json": '"objective"'}
    for name, text in expected.items():
        browser.get(artifacts[name])            # opening the link: shown in the page, not downloaded
        shown = browser.execute_script("return [document.contentType, document.body ? document.body.innerText : '']")
        kind = "application/json" if name.endswith(".json") else "text/plain"
        assert shown[0] == kind, f"{name} is served as {shown[0]}"
        assert text in shown[1], f"{name} does not show its text: {shown[1][:200]!r}"
        with urllib.request.urlopen(artifacts[name], timeout=5) as r:
            assert r.headers["Content-Type"].startswith(kind) and "charset=utf-8" in r.headers["Content-Type"]
