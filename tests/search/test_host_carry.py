"""bench/carry_back.sh and host.sh's caches step: what a session collected waits in .carry/<card>/ and comes back
on a host with that card only (an H100 study and an H200 study can both be carried)."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _tgz(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _collected(root: Path, gpu: str) -> Path:
    """A stand-in for what `host.sh collect` leaves in $OUT on a host with this card."""
    out = root / f"out-{gpu}"
    out.mkdir()
    (out / "study.db").write_bytes(f"{gpu} study".encode())
    (out / "gpu.txt").write_text(f"{gpu}\n")
    _tgz(out / "caches.tgz", {f"timing-decoder-serving-trt8.6.0-{gpu}-fp16.cache": gpu.encode()})
    _tgz(out / "logs.tgz", {"bg.log": b"", "trials/wenet-decoder-serving/00001/result.json": f'"{gpu}"'.encode()})
    return out


def _carry_back(src: Path, carry: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "bench" / "carry_back.sh"), str(src)], capture_output=True, text=True,
                          env={**os.environ, "CARRY_DIR": str(carry)}, timeout=60)


def test_carry_back_keeps_each_cards_study_apart(tmp_path):
    carry = tmp_path / ".carry"
    for gpu in ("h100", "h200"):
        done = _carry_back(_collected(tmp_path, gpu), carry)
        assert done.returncode == 0, done.stderr
    for gpu in ("h100", "h200"):
        assert (carry / gpu / "study.db").read_bytes() == f"{gpu} study".encode()
        assert (carry / gpu / "gpu.txt").read_text().strip() == gpu
        assert (carry / gpu / "trials/wenet-decoder-serving/00001/result.json").read_text() == f'"{gpu}"'
        assert (carry / f"timing-decoder-serving-trt8.6.0-{gpu}-fp16.cache").read_bytes() == gpu.encode()


def test_carry_back_refuses_a_folder_that_is_not_a_collect(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, says in ((str(tmp_path / "missing"), "is not a folder"), (str(empty), "has no gpu.txt")):
        done = _carry_back(Path(args), tmp_path / ".carry")
        assert done.returncode == 2
        assert done.stderr.startswith("error: ") and says in done.stderr and done.stderr.count("\n") == 1
    (empty / "gpu.txt").write_text("../elsewhere\n")
    done = _carry_back(empty, tmp_path / ".carry")
    assert done.returncode == 2 and "names no card slug" in done.stderr
    assert not (tmp_path / "elsewhere").exists()


def _caches(root: Path, gpu: str) -> tuple[str, Path]:
    """host.sh's caches step on a host with this card, run in `root` (where .carry/ is): its stdout, its WORK."""
    host = root / f"host-{gpu}"
    env = {**os.environ, "WORK": str(host), "OUT": str(root / "out"), "TRT_PYTHON": sys.executable,
           "PYTHONPATH": str(REPO), "MODELS": "decoder", "HARNESS": "serving", "GPU_SLUG": gpu,
           "IMPORT_JSON": str(root / "none.json")}
    done = subprocess.run(["bash", str(REPO / "bench" / "host.sh"), "caches"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout, host


def test_caches_step_resumes_the_study_of_this_hosts_card(tmp_path):
    carry = tmp_path / ".carry"
    for gpu in ("h100", "h200"):
        assert _carry_back(_collected(tmp_path, gpu), carry).returncode == 0
    for gpu in ("h200", "h100"):
        out, host = _caches(tmp_path, gpu)
        assert f"resuming .carry/{gpu}/study.db" in out
        assert (host / "study.db").read_bytes() == f"{gpu} study".encode()
        assert (host / "trials/wenet-decoder-serving/00001/result.json").read_text() == f'"{gpu}"'
        assert (host / f"timing-decoder-serving-trt8.6.0-{gpu}-fp16.cache").is_file()


def test_caches_step_leaves_a_bare_carried_database_of_another_card_behind(tmp_path):
    """The older form, .carry/study.db beside gpu.txt: an H100 study is not resumed on an H200 (one objective,
    one card's latencies), nor are its trial folders copied; on the card it names, both are."""
    carry = tmp_path / ".carry"
    (carry / "trials" / "wenet-decoder-serving" / "00001").mkdir(parents=True)
    (carry / "trials" / "wenet-decoder-serving" / "00001" / "result.json").write_text("{}")
    (carry / "study.db").write_bytes(b"h100 study")
    (carry / "gpu.txt").write_text("h100\n")
    out, host = _caches(tmp_path, "h200")
    assert "not resuming .carry/study.db: it was measured on h100, this host is h200" in out
    assert not (host / "study.db").exists() and not (host / "trials").exists()
    out, host = _caches(tmp_path, "h100")
    assert "resuming .carry/study.db" in out and (host / "study.db").read_bytes() == b"h100 study"
    assert (host / "trials" / "wenet-decoder-serving" / "00001" / "result.json").is_file()
