"""bench/study_throughput.py: trials per minute, concurrency and stage medians of studies in a storage,
from trials with known timestamps; bad input is one line and exit 2."""
from __future__ import annotations

import datetime as dt
import json

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from bench.study_throughput import main, most_at_once

T0 = dt.datetime(2026, 12, 7, 8, 0, 0)


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def add(study, state, start, end, **attrs):
    """A finished trial that ran from T0+start to T0+end (the storage keeps a template trial's times)."""
    study.add_trial(FrozenTrial(number=0, trial_id=0, state=state, value=1.0 if state == TrialState.COMPLETE else None,
                                datetime_start=at(start), datetime_complete=at(end), params={"x": 0.5},
                                distributions={"x": FloatDistribution(0, 1)}, user_attrs=attrs, system_attrs={},
                                intermediate_values={}))


@pytest.fixture
def storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    three = optuna.create_study(study_name="w3", storage=url)
    add(three, TrialState.COMPLETE, 0, 100, duration_s=100.0, build_s=80.0, eval_s=5.0, gpu_wait_s=10.0)
    add(three, TrialState.COMPLETE, 0, 110, duration_s=110.0, build_s=85.0, eval_s=5.0, gpu_wait_s=20.0)
    add(three, TrialState.PRUNED, 1, 60, duration_s=59.0, build_s=50.0, eval_s=2.0)
    add(three, TrialState.COMPLETE, 100, 120, duration_s=20.0, build_s=10.0, eval_s=5.0, gpu_wait_s=0.0)
    one = optuna.create_study(study_name="w1", storage=url)
    add(one, TrialState.COMPLETE, 0, 60, duration_s=60.0, build_s=50.0, eval_s=5.0)
    add(one, TrialState.FAIL, 60, 120, duration_s=60.0)
    return url


def test_most_at_once_counts_overlaps_and_not_touching_ends():
    assert most_at_once([(at(0), at(10)), (at(5), at(15)), (at(10), at(20))]) == 2
    assert most_at_once([]) == 0


def test_the_file_summarizes_each_study(storage, tmp_path):
    out = tmp_path / "ab.json"
    assert main(["--storage", storage, "--study", "w3", "--study", "w1", "--gpu", "NVIDIA H100",
                 "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["gpu"] == "NVIDIA H100" and doc["command"].startswith("python3 bench/study_throughput.py --storage")
    w3, w1 = doc["studies"]
    assert (w3["study"], w3["finished"], w3["states"]) == ("w3", 4, {"COMPLETE": 3, "PRUNED": 1})
    assert w3["span_s"] == 120.0 and w3["most_at_once"] == 3
    assert w3["complete_per_min"] == 1.5 and w3["finished_per_min"] == 2.0
    assert w3["median_build_s"] == 65.0 and w3["median_gpu_wait_s"] == 10.0     # the pruned one had no wait attr
    assert (w1["states"], w1["most_at_once"], w1["complete_per_min"]) == ({"COMPLETE": 1, "FAIL": 1}, 1, 0.5)
    assert w1["median_gpu_wait_s"] is None


@pytest.mark.parametrize("args,match", [
    (["--study", "nope"], "no study 'nope'"),
    (["--study", "w1", "--out", "{tmp}/a-file/ab.json"], "cannot write {tmp}/a-file/ab.json"),
])
def test_bad_input_is_one_line_and_exit_2(storage, capsys, tmp_path, args, match):
    (tmp_path / "a-file").write_text("not a folder")
    args, match = [a.format(tmp=tmp_path) for a in args], match.format(tmp=tmp_path)
    assert main(["--storage", storage, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0]


def test_a_missing_database_is_one_line(tmp_path, capsys):
    assert main(["--storage", f"sqlite:///{tmp_path / 'none.db'}", "--study", "w1"]) == 2
    err = capsys.readouterr().err
    assert "no study database" in err and "none.db" in err


def test_last_runs_split_one_study_by_tuning_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="main", storage=url)
    add(study, TrialState.COMPLETE, -500, -400, duration_s=100.0)                       # an earlier session's run
    add(study, TrialState.COMPLETE, 0, 100, tuner_run="a", workers_per_gpu=3, duration_s=100.0)
    add(study, TrialState.COMPLETE, 10, 70, tuner_run="a", workers_per_gpu=3, duration_s=60.0)
    add(study, TrialState.COMPLETE, 200, 260, tuner_run="b", workers_per_gpu=1, duration_s=60.0)
    add(study, TrialState.PRUNED, 260, 300, tuner_run="b", workers_per_gpu=1, duration_s=40.0)
    out = tmp_path / "ab.json"
    assert main(["--storage", url, "--study", "main", "--last-runs", "2", "--out", str(out)]) == 0
    a, b = json.loads(out.read_text())["studies"]
    assert (a["tuner_run"], a["workers_per_gpu"], a["finished"], a["most_at_once"]) == ("a", 3, 2, 2)
    assert a["span_s"] == 100.0 and a["complete_per_min"] == 1.2
    assert (b["tuner_run"], b["workers_per_gpu"], b["states"], b["span_s"]) == ("b", 1, {"COMPLETE": 1, "PRUNED": 1},
                                                                                 100.0)
    assert main(["--storage", url, "--study", "main", "--last-runs", "4"]) == 2     # only two runs are tagged


def test_a_negative_run_count_is_one_line(storage, capsys):
    assert main(["--storage", storage, "--study", "w1", "--last-runs", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: --last-runs -1: need 0 or more"
