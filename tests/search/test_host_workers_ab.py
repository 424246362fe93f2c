"""bench/host.sh workers-ab on the CPU: both worker counts tune their own study with the stand-in worker,
and bench/study_throughput.py writes the file that compares them (how many ran at once included)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from conftest import FAKE_WORKER


def run_step(work, tmp_path, **extra):
    repo = Path(__file__).resolve().parents[2]
    wrapper = tmp_path / "fake-worker"         # one word, as TUNE_ARGS is split on spaces
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_WORKER}" --fake-mode ok "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    (work / "data" / ".complete").touch()
    env = {**os.environ, "WORK": str(work), "OUT": str(tmp_path / "out"), "TRT_PYTHON": sys.executable,
           "PYTHONPATH": str(repo), "MODELS": "encoder", "HARNESS": "serving", "GPU_SLUG": "test",
           "AB_WORKERS": "2 1", "AB_S": "4", "FAKE_BUILD_S": "0.5",
           "TUNE_ARGS": f"--worker-command {wrapper} --grid 1x16,4x64", **extra}
    done = subprocess.run(["bash", "bench/host.sh", "workers-ab"], cwd=repo, env=env,   # steps run from the repo root
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads((work / "results" / "workers-ab-test.json").read_text())


def test_workers_ab_step_writes_the_comparison(work, tmp_path):
    doc = run_step(work, tmp_path)
    two, one = doc["studies"]
    assert (two["study"], one["study"]) == ("wenet-encoder-serving-w2", "wenet-encoder-serving-w1")
    assert two["states"].get("COMPLETE", 0) >= 1 and one["states"].get("COMPLETE", 0) >= 1
    assert one["most_at_once"] == 1 and two["most_at_once"] <= 2


def test_workers_ab_in_the_main_study_splits_it_by_run(work, tmp_path):
    doc = run_step(work, tmp_path, AB_STUDY="main")
    two, one = doc["studies"]
    assert two["study"] == one["study"] == "wenet-encoder-serving" and two["tuner_run"] != one["tuner_run"]
    assert (two["workers_per_gpu"], one["workers_per_gpu"]) == (2, 1)
    assert one["most_at_once"] == 1 and two["states"].get("COMPLETE", 0) >= 1
    export = json.loads((work / "results" / "study-encoder-serving-test.json").read_text())
    assert sum(1 for t in export["studies"][0]["trials"] if t["state"] == "COMPLETE") >= 2
