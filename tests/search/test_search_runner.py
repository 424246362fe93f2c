"""The isolated trial runner with the fake worker: ok, crash, signal deaths, hang -> killed;
the request file it writes is the worker's one input."""
from __future__ import annotations

import dataclasses
import signal

import pytest

from engine.config import BuildConfig
from search.options import TrialOptions
from search.request import TrialRequest, read_request
from search.runner import run_trial, worker_args, worker_command


@pytest.fixture
def request_(tmp_path):
    cfg = BuildConfig("encoder", fp16=True).save(tmp_path / "config.yaml")
    return TrialRequest(config=cfg, onnx=tmp_path / "encoder.onnx", data=tmp_path / "data",
                        out=tmp_path / "trial", timing_cache=tmp_path / "timing.cache",
                        cache_dir=tmp_path / "prepared",
                        trial=TrialOptions(runs=3, grid="1x16,4x64", trial_timeout_s=60.0))


def test_ok_returns_the_result_and_sets_the_gpu(request_, fake_command):
    out = run_trial(request_, gpu="1", command=fake_command("ok"))
    assert out.status == "ok" and out.ok and out.returncode == 0
    assert out.result["cuda_visible_devices"] == "1"
    assert [(c["batch"], c["length"]) for c in out.result["cases"]] == [(1, 16), (4, 64)]
    assert out.result["constraint"] <= 0
    assert out.files["stdout"].read_text().startswith("fake worker pid")
    assert (request_.timing_cache).read_text() == "trial\n"


def test_crash_reason_is_the_last_stderr_line(request_, fake_command):
    out = run_trial(request_, command=fake_command("crash"))
    assert out.status == "failed" and out.returncode == 1
    assert out.reason == "error: build: RuntimeError: fake builder failure"


@pytest.mark.parametrize("mode,signame", [("segfault", "SIGSEGV"), ("oom", "SIGKILL")])
def test_death_by_signal(request_, fake_command, mode, signame):
    out = run_trial(request_, command=fake_command(mode))
    assert out.status == "failed"
    assert out.reason.startswith(f"worker killed by {signame}")
    if mode == "oom":
        assert "out of memory" in out.reason


def test_death_by_signal_names_the_stage_not_the_last_warning_as_its_cause(request_, fake_command):
    # trial 41 of the H200 decoder study read "worker killed by SIGSEGV: pass bool_slice found no
    # site to rewrite": a warning printed before the crash passed for its cause
    out = run_trial(request_, command=fake_command("segfault"))
    assert out.reason == ("worker killed by SIGSEGV in its build stage "
                          "(last stderr line: warning: pass bool_slice found no site to rewrite)")


def test_exit_zero_without_result_is_a_failure(request_, fake_command):
    out = run_trial(request_, command=fake_command("noresult"))
    assert out.status == "failed" and "result.json" in out.reason


def test_hang_is_killed_at_the_timeout(request_, fake_command, process_alive):
    request_.trial = dataclasses.replace(request_.trial, trial_timeout_s=2.0)
    out = run_trial(request_, command=fake_command("hang"))
    assert out.status == "timeout" and "timeout of 2 s" in out.reason
    pids = [int(p) for p in (request_.out / "hang.pid").read_text().split()]
    assert len(pids) == 2 and not any(process_alive(p) for p in pids)   # the worker's whole process group
    assert out.returncode == -signal.SIGTERM


def test_worker_command_line_is_the_request_file(request_, fake_command):
    cmd = worker_command(request_)
    assert cmd[1:] == ["-m", "search.worker", "--request", str(request_.out / "request.json")]
    from search.worker import parse_args
    assert parse_args(worker_args(request_)).request == str(request_.path)
    run_trial(request_, command=fake_command("ok"))
    assert read_request(request_.path) == request_          # written by the runner, read back unchanged


def test_a_watch_reason_stops_the_worker_group(request_, fake_command, process_alive):
    calls = []

    def watch():
        calls.append(1)
        return "pruned: too slow" if (request_.out / "hang.pid").exists() else None
    out = run_trial(request_, command=fake_command("hang"), watch=watch, poll_s=0.1)
    assert out.status == "pruned" and out.reason == "pruned: too slow" and not out.ok
    pids = [int(p) for p in (request_.out / "hang.pid").read_text().split()]
    assert len(pids) == 2 and not any(process_alive(p) for p in pids)   # the worker and its child
    assert calls


def test_a_worker_that_finishes_is_not_stopped_by_its_watch(request_, fake_command):
    out = run_trial(request_, command=fake_command("ok"), watch=lambda: None, poll_s=0.1)
    assert out.status == "ok" and out.result["constraint"] <= 0


def test_time_waiting_for_a_shared_gpu_does_not_count_against_the_timeout(request_):
    """A worker in the GPU-wait stage (search.gpu_share) past the timeout still finishes: only its own
    work counts; the hang test above shows the same timeout killing a worker that is not waiting."""
    import sys
    from pathlib import Path

    fake_worker = Path(__file__).with_name("fake_trial_worker.py")
    request_.trial = dataclasses.replace(request_.trial, trial_timeout_s=3.0)
    out = run_trial(request_, command=lambda req: [sys.executable, str(fake_worker), *worker_args(req),
                                                   "--fake-mode", "wait", "--fake-linger", "5"])
    assert out.status == "ok", out.reason
    stages = (request_.out / "stage.txt").read_text().split()
    assert "wait-gpu" in stages
