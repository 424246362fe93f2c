"""Fixtures of the search tests: the fake trial worker and a throw-away work directory."""
from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest

from search.request import TrialRequest
from search.runner import worker_args
from stand_ins import write_stand_ins

FAKE_WORKER = Path(__file__).with_name("fake_trial_worker.py")


@pytest.fixture(autouse=True)
def _quiet_optuna():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _fake_command(modes: dict[int, str] | str = "ok"):
    """A runner command builder running the fake worker; `modes` maps trial number -> mode.

    The trial number is the trial directory's name (objective.TrialObjective.trial_dir).
    """
    def build(req: TrialRequest) -> list[str]:
        mode = modes if isinstance(modes, str) else modes.get(int(req.out.name), "ok")
        return [sys.executable, str(FAKE_WORKER), *worker_args(req), "--fake-mode", mode]
    return build


@pytest.fixture
def fake_command():
    """fake_command(modes) -> a command builder for runner.run_trial / TrialObjective."""
    return _fake_command


@pytest.fixture
def work(tmp_path) -> Path:
    """work/ with stand-in model files and test data (tune checks them; the fake worker reads neither)."""
    return write_stand_ins(tmp_path / "work")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that a container may lack counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def process_alive():
    """process_alive(pid) -> bool, from /proc (Linux)."""
    return _alive
