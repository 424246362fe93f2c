"""search import: a study exported on one (bare, handed-back) GPU host continues in a new database."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import optuna
import pytest

from search.cli import main
from search.storage import constraints_func, is_feasible, open_study

FAKE_WORKER = Path(__file__).with_name("fake_trial_worker.py")
CONTEST_SEEDS = ("baseline", "reference", "all_fp16", "passes_fp32", "mixed", "fds_off", "fds_off_tf32")
RAN = 4                                     # the trials the exported study ran: seeds, the others wait


def _tune(work: Path, trials: str, mode: str = "ok") -> int:
    return main(["tune", "--work-dir", str(work), "--model", "encoder", "--harness", "contest", "--trials", trials,
                 "--seed", "0", "--grid", "1x16,4x64", "--no-progress",
                 "--worker-command", shlex.join([sys.executable, str(FAKE_WORKER), "--fake-mode", mode])])


def _export(work: Path, out: Path) -> dict:
    assert main(["export", "--work-dir", str(work), "--out", str(out)]) == 0
    return json.loads(out.read_text())


def _study(work: Path) -> optuna.Study:
    return open_study(f"sqlite:///{work}/study.db", "encoder", "contest", create=False)


@pytest.fixture
def exported(work, tmp_path):
    assert _tune(work, str(RAN)) == 0
    return tmp_path / "study.json", _export(work, tmp_path / "study.json")


def _copy_inputs(work: Path, dest: Path) -> Path:
    """A second work folder with the same stand-in model and data (the import reads the ONNX)."""
    import shutil

    shutil.copytree(work, dest, ignore=shutil.ignore_patterns("study.db*", "trials", "artifacts", "plans"))
    return dest


def test_import_restores_every_finished_trial(exported, work, tmp_path, capsys):
    path, data = exported
    other = _copy_inputs(work, tmp_path / "other")
    assert main(["import", str(path), "--work-dir", str(other), "--model", "encoder"]) == 0
    waiting = len(CONTEST_SEEDS) - RAN
    assert f"{RAN} trials imported, {waiting} enqueued again" in capsys.readouterr().out     # the seeds not run yet
    old, new = _study(work), _study(other)
    pairs = list(zip(old.get_trials(), new.get_trials()))
    assert len(pairs) == len(CONTEST_SEEDS)
    assert [t.user_attrs.get("seed") for t in old.get_trials()] == list(CONTEST_SEEDS)
    assert [t.user_attrs.get("seed") for t in new.get_trials()] == [t.user_attrs.get("seed") for t in old.get_trials()]
    for a, b in pairs[:RAN]:
        assert (a.state, a.value, a.params, a.distributions) == (b.state, b.value, b.params, b.distributions)
        assert is_feasible(a) == is_feasible(b)
        assert b.system_attrs["constraints"] == list(constraints_func(a))   # constrained TPE reads this
        assert b.intermediate_values == a.intermediate_values
        assert (b.datetime_start, b.datetime_complete) == (a.datetime_start, a.datetime_complete)
    assert new.user_attrs["seeded"] == old.user_attrs["seeded"]
    assert new.best_trial.value == old.best_trial.value


def test_a_pruned_trial_keeps_its_value_and_timestamps(exported):
    """Optuna stores a pruned trial's last intermediate value; the import must not drop it, nor
    restamp a trial with the time of the import."""
    from search.space import SearchSpace
    from search.study_import import frozen_trial, full_distributions

    _, data = exported
    rec = dict(full_distributions(next(r for r in data["studies"][0]["trials"] if r["state"] == "COMPLETE"),
                                  data["studies"][0]["distributions"]))
    rec.update(state="PRUNED", value=3.5, intermediate_values={"0": 3.5})
    study = optuna.create_study()
    study.add_trial(frozen_trial(rec, SearchSpace("encoder")))
    back = study.trials[0]
    assert (back.state, back.value) == (optuna.trial.TrialState.PRUNED, 3.5)
    assert (back.datetime_start.isoformat(), back.datetime_complete.isoformat()) == \
        (rec["datetime_start"], rec["datetime_complete"])
    # an export written after an import that dropped the value: the last intermediate value, as Optuna's tell
    rec.update(value=None, intermediate_values={"0": 2.0, "1": 4.0})
    assert frozen_trial(rec, SearchSpace("encoder")).value == 4.0


def test_resumed_study_does_not_rerun_its_seeds(exported, work, tmp_path):
    path, _ = exported
    other = _copy_inputs(work, tmp_path / "other")
    assert main(["import", str(path), "--work-dir", str(other), "--model", "encoder"]) == 0
    assert _tune(other, str(len(CONTEST_SEEDS) - RAN)) == 0
    trials = _study(other).get_trials()
    assert len(trials) == len(CONTEST_SEEDS) and all(t.state.is_finished() for t in trials)   # the waiting seeds ran
    new_seeds = [t.user_attrs.get("seed") for t in trials[RAN:]]
    ran_before = {t.user_attrs.get("seed") for t in trials[:RAN]}
    assert not (set(new_seeds) & ran_before - {None})


def _as_old_export(data: dict) -> dict:
    """The export as written before it carried distributions (neither the study table nor per trial)."""
    for st in data["studies"]:
        st.pop("distributions", None)
        for t in st["trials"]:
            t.pop("distributions", None)
            t.pop("distributions_shared", None)
    return data


def test_an_export_lists_each_distribution_once(exported, work, tmp_path):
    """The study table holds the distributions every trial shares; a record keeps only its own, and the
    import puts them together again (test_import_restores_every_finished_trial compares them)."""
    _, data = exported
    st = data["studies"][0]
    finished = [t for t in st["trials"] if t["state"] != "WAITING"]
    assert st["distributions"] and finished and all(t["distributions_shared"] for t in finished)
    assert all(t["distributions"] == {} for t in finished)            # one space: nothing of their own
    assert all("distributions_shared" not in t for t in st["trials"] if t["state"] == "WAITING")


def test_old_export_without_distributions_is_replayed_through_the_space(exported, work, tmp_path, capsys):
    path, data = exported
    path.write_text(json.dumps(_as_old_export(data)))
    other = _copy_inputs(work, tmp_path / "other")
    assert main(["import", str(path), "--work-dir", str(other), "--model", "encoder"]) == 0
    for a, b in zip(_study(work).get_trials(), _study(other).get_trials()):
        assert a.distributions == b.distributions


def test_waiting_trials_are_enqueued_again(work, tmp_path, capsys):
    assert main(["plan", "--work-dir", str(work), "--model", "encoder", "--harness", "contest",
                 "--plan", "ablation"]) == 0
    data = _export(work, tmp_path / "study.json")
    waiting = [t for t in data["studies"][0]["trials"] if t["state"] == "WAITING"]
    assert waiting and all(t["params"] for t in waiting)
    other = _copy_inputs(work, tmp_path / "other")
    assert main(["import", str(tmp_path / "study.json"), "--work-dir", str(other), "--model", "encoder"]) == 0
    again = _study(other).get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.user_attrs.get("plan") for t in again] == [t["user_attrs"].get("plan") for t in waiting]


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [ln for ln in err if ln.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_import_into_a_study_with_trials_is_refused(exported, work, capsys):
    path, _ = exported
    assert main(["import", str(path), "--work-dir", str(work), "--model", "encoder"]) == 2
    assert "already has trials" in _one_error(capsys)


def test_params_outside_the_space_write_nothing(exported, work, tmp_path, capsys):
    path, data = exported
    for t in _as_old_export(data)["studies"][0]["trials"]:
        t["params"]["pass.no_such_pass"] = True
    path.write_text(json.dumps(data))
    other = _copy_inputs(work, tmp_path / "other")
    assert main(["import", str(path), "--work-dir", str(other), "--model", "encoder"]) == 2
    assert "not in this search space" in _one_error(capsys)
    assert not (other / "study.db").exists()


@pytest.mark.parametrize("text,match", [
    ("{not json", "cannot read export"),
    ('{"studies": 3}', "not a `search export` file"),
    ('{"studies": [{"model": "decoder", "harness": "contest", "trials": []}]}', "no study of the requested"),
])
def test_bad_export_files(text, match, work, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    assert main(["import", str(bad), "--work-dir", str(work), "--model", "encoder"]) == 2
    assert match in _one_error(capsys)


def test_a_bad_timestamp_is_one_error_and_writes_nothing(exported, work, tmp_path, capsys):
    path, data = exported
    data["studies"][0]["trials"][0]["datetime_start"] = "yesterday"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    other = _copy_inputs(work, tmp_path / "other")
    assert main(["import", str(bad), "--work-dir", str(other), "--model", "encoder"]) == 2
    assert "timestamp 'yesterday' that is not ISO 8601" in _one_error(capsys)
    assert not (other / "study.db").exists()


def test_host_caches_step_resumes_the_committed_export(exported, work, tmp_path):
    """A new GPU host with no carried study.db (the ignored .carry/ can be gone too) goes on from the
    committed export; a host that has the study in its database keeps it."""
    import os
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    path, data = exported
    host = _copy_inputs(work, tmp_path / "host")
    env = {**os.environ, "WORK": str(host), "OUT": str(tmp_path / "out"), "TRT_PYTHON": sys.executable,
           "PYTHONPATH": str(repo), "MODELS": "encoder", "HARNESS": "contest", "IMPORT_JSON": str(path)}

    def caches() -> str:
        done = subprocess.run(["bash", str(repo / "bench" / "host.sh"), "caches"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert f"wenet-encoder-contest: {RAN} trials imported, {len(CONTEST_SEEDS) - RAN} enqueued again" in caches()
    trials = _study(host).get_trials()
    assert [t.number for t in trials] == [r["number"] for r in data["studies"][0]["trials"]]
    second = caches()
    assert f"kept, the storage holds it with {len(CONTEST_SEEDS)} trials" in second and "imported" not in second
    assert len(_study(host).get_trials()) == len(trials)


def test_import_if_missing_keeps_a_study_the_storage_has(exported, work, capsys):
    path, _ = exported
    before = len(_study(work).get_trials())
    assert main(["import", str(path), "--work-dir", str(work), "--model", "encoder", "--if-missing"]) == 0
    assert f"kept, the storage holds it with {before} trials" in capsys.readouterr().out
    assert len(_study(work).get_trials()) == before


def test_import_if_missing_does_not_check_a_kept_study_against_the_space(exported, work, tmp_path, capsys):
    """A carried database that holds the study is kept without replaying its planned trials through a space
    (the GPU host's caches step runs before the plugins step builds the library those plans need); the same
    export into an empty storage is still checked, and a trial that does not fit stops it, one line."""
    path, data = exported
    done = next(r for r in data["studies"][0]["trials"] if r["state"] == "COMPLETE")
    done.pop("distributions", None)                             # as an older export: replayed through the space
    done.pop("distributions_shared", None)
    done["params"].pop(sorted(done["params"])[0])               # ... which asks for a parameter it lacks
    path.write_text(json.dumps(data))
    before = len(_study(work).get_trials())
    assert main(["import", str(path), "--work-dir", str(work), "--model", "encoder", "--if-missing"]) == 0
    assert len(_study(work).get_trials()) == before
    capsys.readouterr()
    other = _copy_inputs(work, tmp_path / "other")
    assert main(["import", str(path), "--work-dir", str(other), "--model", "encoder", "--if-missing"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: trial {done['number']}: its params do not fit this search space")
    assert "\n" not in err
    assert not (other / "study.db").exists() or not optuna.get_all_study_names(f"sqlite:///{other}/study.db")


def test_a_waiting_plan_queued_in_a_smaller_space_is_imported(exported, work, tmp_path, capsys):
    """A planned trial that lacks a dimension of this space (queued without --plugin-lib or --allow-int8) is no
    reason to refuse the import: `tune` pins that dimension to its default when it starts."""
    path, data = exported
    waiting = next(r for r in data["studies"][0]["trials"] if r["state"] == "WAITING")
    waiting["params"].pop("fp16")
    path.write_text(json.dumps(data))
    other = _copy_inputs(work, tmp_path / "other")
    assert main(["import", str(path), "--work-dir", str(other), "--model", "encoder"]) == 0
    again = [t for t in _study(other).get_trials() if t.state.name == "WAITING"]
    assert any("fp16" not in t.system_attrs["fixed_params"] for t in again)


def test_an_export_whose_table_lacks_a_distribution_is_refused():
    from search.errors import SearchError
    from search.study_import import full_distributions

    rec = {"number": 3, "params": {"fp16": True, "int8": False}, "distributions": {}, "distributions_shared": True}
    with pytest.raises(SearchError, match="trial 3: the export's distribution table lacks int8"):
        full_distributions(rec, {"fp16": "{}"})
