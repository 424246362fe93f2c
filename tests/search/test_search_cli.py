"""python -m search: --help everywhere, one-line errors with exit 2, and the tune ->
status/best/freeze/export/plot/dashboard flow with the fake worker."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from engine.config import BuildConfig
from search.cli import VERBS, main
from search.results import config_of
from search.storage import best_feasible_trial, open_study
from search.runner import REPO_ROOT
from search.toolkit import precision_family, toolkit_key

FAKE_WORKER = Path(__file__).with_name("fake_trial_worker.py")
COMMON_SEEDS = ("baseline", "reference", "all_fp16", "passes_fp32", "mixed")     # seed_study's labels, in order
SEEDS = COMMON_SEEDS + ("per_batch", "per_batch_fp16", "per_batch_tf32")        # the serving harness's (default)
CONTEST_SEEDS = COMMON_SEEDS + ("fds_off", "fds_off_tf32")


def fake(mode="ok"):
    return shlex.join([sys.executable, str(FAKE_WORKER), "--fake-mode", mode])


def tune(work, *extra, mode="ok", model="encoder", trials="3"):
    return main(["tune", "--work-dir", str(work), "--model", model, "--trials", trials, "--seed", "0",
                 "--grid", "1x16,4x64", "--no-progress", "--worker-command", fake(mode), *extra])


def one_error_line(capsys, match):
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and match in err[0], err
    return err[0]


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_help_of_every_verb(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    assert f"python -m search {verb}" in capsys.readouterr().out


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "search", "--help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "freeze" in out.stdout


@pytest.mark.parametrize("args,match", [
    (["tune", "--model", "joiner", "--trials", "1"], "unknown model 'joiner'"),
    (["tune", "--model", "encoder"], "--trials N and/or --time-budget"),
    (["tune", "--model", "encoder", "--trials", "0"], "--trials 0"),
    (["tune", "--model", "encoder", "--trials", "1", "--gpus", "0,x"], "--gpus"),
    (["tune", "--model", "encoder", "--trials", "1", "--gpus", "1,1"], "repeats"),
    (["tune", "--model", "encoder", "--trials", "1", "--workers-per-gpu", "0"], "--workers-per-gpu 0"),
    (["tune", "--model", "both", "--trials", "1", "--study-name", "s"], "--study-name needs a single"),
    (["tune", "--model", "encoder", "--trials", "1", "--max-opt-level", "9"], "--max-opt-level 9"),
    (["tune", "--model", "encoder", "--trials", "1", "--grid", "3x3"], "not a test shape"),
    (["tune", "--model", "encoder", "--trials", "1", "--harness", "bogus"], "invalid choice: 'bogus'"),
    (["tune", "--model", "encoder", "--trials", "1", "--runs", "0"], "--runs 0"),
    (["tune", "--model", "encoder", "--trials", "1", "--sampler", "annealing"], "invalid choice: 'annealing'"),
    (["tune", "--model", "encoder", "--trials", "1", "--worker-command", " "], "--worker-command is empty"),
    (["tune", "--model", "encoder", "--trials", "1", "--plugin-lib", "nowhere.so"], "nowhere.so does not exist"),
    (["status", "--harness", "bogus"], "invalid choice: 'bogus'"),
    (["freeze", "--harness", "all"], "invalid choice: 'all'"),
    (["plan", "--plan", "ablation", "--harness", "bogus"], "invalid choice"),
    (["tune", "--model", "encoder", "--trials", "1", "--storage", "not a url"], "not a SQLAlchemy URL"),
    (["tune", "--model", "encoder", "--trials", "x"], "invalid int value"),
    (["status", "--model", "joiner"], "unknown model"),
    (["status"], "no study database"),
    (["freeze"], "no study database"),
    (["status", "--storage", "nosuchdb://a/b"], "no database driver"),
    (["bogus"], "invalid choice"),
    (["export"], "--out"),
    (["tune", "--model", "encoder", "--trials", "1", "--seeds", "all,baseline"], "expected all, none or seed labels"),
    (["tune", "--model", "encoder", "--trials", "1", "--seeds", "baseline,baseline"], "repeats a label"),
])
def test_bad_input_is_one_line_and_exit_2(args, match, work, capsys):
    argv = args[:1] + (["--work-dir", str(work)] if args[0] in VERBS else []) + args[1:]
    try:
        code = main(argv)
    except SystemExit as exc:          # argparse's own errors (bad int, unknown verb, missing option)
        code = exc.code
    assert code == 2
    one_error_line(capsys, match)


def test_missing_model_file(work, capsys):
    (work / "onnx" / "encoder.onnx").unlink()
    assert tune(work) == 2
    one_error_line(capsys, "encoder.onnx does not exist")


def test_tune_status_best_freeze_export(work, tmp_path, capsys):
    n = len(SEEDS) + 1
    assert tune(work, trials=str(n)) == 0               # the seeds, then one sampled trial
    out = capsys.readouterr()
    assert f"wenet-encoder-serving (serving harness): {n} new trials ({n} complete" in out.out
    for label in SEEDS:                                  # one line per trial
        assert f"[{label}]" in out.err
    assert f"encoder serving trial {len(SEEDS)} gpu0:" in out.err   # the sampled trial has no seed label

    assert main(["status", "--work-dir", str(work)]) == 0
    status = capsys.readouterr().out
    assert f"wenet-encoder-serving (encoder, serving harness): {n} trials (complete {n}); {n} feasible, 0 infeasible" \
        in status
    assert "\n  time: " in status and f"in {n} trials" in status and f"of {n} with stage times: build " in status

    study = open_study(f"sqlite:///{work / 'study.db'}", "encoder", create=False)
    best = best_feasible_trial(study)
    assert main(["best", "--work-dir", str(work), "--model", "encoder"]) == 0
    text = capsys.readouterr().out
    assert f"serving harness, trial {best.number}" in text and "Good" in text
    assert "4x64" not in text.split("---")[0]

    configs = tmp_path / "configs"
    assert main(["freeze", "--work-dir", str(work), "--model", "encoder", "--out", str(configs)]) == 0
    frozen = configs / "encoder.yaml"                     # where build.sh looks
    assert BuildConfig.load(frozen) == config_of(best)
    header = frozen.read_text().splitlines()[:3]
    assert header[0].startswith("# Frozen by") and f"trial {best.number}" in header[1]
    assert "wenet-encoder-serving" in header[1] and header[2].startswith("# harness serving")
    assert (configs / "encoder.timing.cache").read_bytes() == \
        (work / f"timing-encoder-serving-{toolkit_key('0')}-{precision_family(config_of(best))}.cache").read_bytes()

    export = tmp_path / "study.json"
    assert main(["export", "--work-dir", str(work), "--out", str(export)]) == 0
    data = json.loads(export.read_text())
    (st,) = data["studies"]
    assert st["study"] == "wenet-encoder-serving" and st["harness"] == "serving" and len(st["trials"]) == n
    row = st["trials"][best.number]
    assert row["state"] == "COMPLETE" and row["value"] == best.value and row["feasible"] is True
    assert row["constraint"] <= 0 and row["params"] == best.params and "latency_ms" in row["user_attrs"]

    # re-running continues the study: no new seeds, numbering goes on
    assert tune(work, trials="2") == 0
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(n + 2))
    assert [t.user_attrs.get("seed") for t in trials] == [*SEEDS, None, None, None]


def test_freeze_without_feasible_trial_exits_2_and_writes_nothing(work, tmp_path, capsys):
    assert tune(work, mode="infeasible", trials="2") == 0
    assert main(["status", "--work-dir", str(work)]) == 0
    assert "0 feasible, 2 infeasible" in capsys.readouterr().out
    configs = tmp_path / "configs"
    assert main(["freeze", "--work-dir", str(work), "--out", str(configs)]) == 2
    one_error_line(capsys, "no feasible trial")
    assert not configs.exists()
    assert main(["best", "--work-dir", str(work)]) == 2
    one_error_line(capsys, "no feasible trial")


def test_freeze_both_is_all_or_nothing(work, tmp_path, capsys):
    assert tune(work, model="encoder", trials="1") == 0
    capsys.readouterr()
    assert tune(work, model="decoder", mode="crash", trials="1") == 1     # a broken setup is not a success
    one_error_line(capsys, "every new wenet-decoder-serving trial failed; last: error: build: RuntimeError")
    configs = tmp_path / "configs"
    assert main(["freeze", "--work-dir", str(work), "--out", str(configs)]) == 2
    one_error_line(capsys, "wenet-decoder")
    assert not (configs / "encoder.yaml").exists()


def test_plot(work, tmp_path, capsys):
    assert tune(work, trials="2") == 0
    capsys.readouterr()
    code = main(["plot", "--work-dir", str(work), "--out", str(tmp_path / "best.png")])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert code == 2
        one_error_line(capsys, "plot needs matplotlib")
    else:
        assert code == 0 and (tmp_path / "best.png").stat().st_size > 0


def test_best_so_far_series(work):
    from search.results import best_so_far
    assert tune(work, "--harness", "contest", trials="6") == 0
    study = open_study(f"sqlite:///{work / 'study.db'}", "encoder", "contest", create=False)
    series = best_so_far(study)
    values = [t.value for t in study.trials]
    assert [n for n, _ in series] == [0, 1, 2, 3, 4, 5]
    assert [v for _, v in series] == [min(values[:i + 1]) for i in range(6)]


def test_dashboard_serves_storage_and_artifacts(work, monkeypatch):
    from search import dashboard
    assert tune(work, trials="1") == 0
    seen = {}
    monkeypatch.setattr(dashboard, "check_listen", lambda host, port: seen.update(checked=(host, port)))
    monkeypatch.setattr(dashboard, "serve", lambda storage, artifacts, host, port: seen.update(
        storage=storage, artifacts=artifacts, host=host, port=port))
    assert main(["dashboard", "--work-dir", str(work)]) == 0
    assert seen["checked"] == ("127.0.0.1", 8080) and seen["host"] == "127.0.0.1" and seen["port"] == 8080
    assert seen["artifacts"] == work / "artifacts" and any(seen["artifacts"].iterdir())
    assert optuna.study.get_all_study_names(seen["storage"]) == ["wenet-encoder-serving"]


def test_dashboard_serves_text_artifacts_as_text(work):
    """The middleware types a trial artifact by its file name, also one stored as a download."""
    from search.dashboard import text_artifacts
    from search.trial_objective import artifact_mimetype
    assert tune(work, trials="1") == 0
    study = open_study(f"sqlite:///{work / 'study.db'}", "encoder", create=False)
    trial = study.trials[0]
    metas = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    by_name = {m.filename: m for m in metas}
    assert by_name["build.log"].mimetype == artifact_mimetype("build.log") == "text/plain; charset=utf-8"
    app = text_artifacts(lambda env, start: [start("200 OK", [("Content-Type", "application/octet-stream")]) or b"x"],
                         study._storage)
    got = []
    for name, kind in (("build.log", "text/plain"), ("layers.json", "application/json")):
        path = f"/artifacts/{study._study_id}/{trial._trial_id}/{by_name[name].artifact_id}"
        app({"PATH_INFO": path}, lambda status, headers, exc_info=None: got.append(dict(headers)["Content-Type"]))
        assert got[-1].startswith(kind)
    app({"PATH_INFO": "/api/studies"}, lambda status, headers, exc_info=None: got.append(dict(headers)["Content-Type"]))
    assert got[-1] == "application/octet-stream"                 # not an artifact: untouched


def test_two_gpus_two_processes_one_storage(work, capsys):
    n = len(CONTEST_SEEDS) + 2
    assert tune(work, "--gpus", "0,1", "--harness", "contest", trials=str(n)) == 0   # every seed, two sampled
    study = open_study(f"sqlite:///{work / 'study.db'}", "encoder", "contest", create=False)
    trials = study.get_trials()
    assert len(trials) == n and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.user_attrs["gpu"] for t in trials) == ["0"] * ((n + 1) // 2) + ["1"] * (n // 2)   # shared out
    assert sorted(t.user_attrs["seed"] for t in trials if "seed" in t.user_attrs) == sorted(CONTEST_SEEDS)
    assert {t.user_attrs["harness"] for t in trials} == {"contest"}     # the JSON options reached the children
    for t in trials:        # each trial used its own GPU's cache of its precision family
        g = t.user_attrs["gpu"]
        family = precision_family(config_of(t))
        assert Path(t.user_attrs["timing_cache"]).name == f"timing-encoder-contest-{toolkit_key(g)}-gpu{g}-{family}.cache"
    assert {p.name.split("-gpu")[1][0] for p in work.glob("timing-*.cache")} == {"0", "1"}


def test_workers_sharing_one_gpu_overlap_builds_never_measurements(work, monkeypatch):
    """--workers-per-gpu 2: two loops on GPU 0, one storage, one timing cache; the fake worker takes the
    GPU lock as the real one does (build shared, measurement exclusive) and logs each turn."""
    monkeypatch.setenv("FAKE_BUILD_S", "0.4")
    n = 6
    assert tune(work, "--workers-per-gpu", "2", "--seeds", "none", trials=str(n)) == 0
    study = open_study(f"sqlite:///{work / 'study.db'}", "encoder", create=False)
    trials = study.get_trials()
    assert len(trials) == n and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["gpu"] for t in trials} == {"0"}
    assert {p.name for p in (work / "logs").glob("tune-*.log")} == {
        "tune-encoder-serving-gpu0-w0.log", "tune-encoder-serving-gpu0-w1.log"}
    assert not any("-gpu" in Path(t.user_attrs["timing_cache"]).name for t in trials)   # the GPU's one cache
    turns = [ln.split() for ln in (work / "locks" / "intervals.txt").read_text().splitlines()]
    assert sum(k == "measure" for k, *_ in turns) == n
    for kind, pid, start, end in turns:
        if kind != "measure":
            continue
        for _, other, s, e in turns:      # a measurement shares its time with no other trial's turn
            assert other == pid or float(e) <= float(start) or float(s) >= float(end)


def test_seeds_option_picks_the_known_configs_of_a_new_study(work, capsys):
    """--seeds LABELS enqueues only those (in the harness's order); a resumed study is not seeded again."""
    assert tune(work, "--seeds", "per_batch_tf32,baseline", trials="3") == 0
    study = open_study(f"sqlite:///{work / 'study.db'}", "encoder", create=False)
    assert study.user_attrs["seeded"] == ["baseline", "per_batch_tf32"]
    trials = study.get_trials()
    assert [t.user_attrs.get("seed") for t in trials] == ["baseline", "per_batch_tf32", None]
    assert trials[1].params["tf32"] is True and trials[1].params["layout.serving"] == "per_batch"
    capsys.readouterr()
    assert tune(work, "--seeds", "mixed", trials="1") == 0
    assert "was seeded when it was created (baseline, per_batch_tf32); --seeds applies to a new study" \
        in capsys.readouterr().err
    assert [t.user_attrs.get("seed") for t in study.get_trials()] == ["baseline", "per_batch_tf32", None, None]


def test_seeds_none_samples_from_the_first_trial(work):
    assert tune(work, "--seeds", "none", "--harness", "contest", trials="2") == 0
    assert tune(work, "--harness", "contest", trials="1") == 0        # resumed: still no seeds
    study = open_study(f"sqlite:///{work / 'study.db'}", "encoder", "contest", create=False)
    assert study.user_attrs["seeded"] == []
    assert [t.user_attrs.get("seed") for t in study.get_trials()] == [None, None, None]


def test_a_seed_of_the_other_harness_is_one_error_and_writes_nothing(work, capsys):
    assert tune(work, "--seeds", "baseline,per_batch", "--harness", "contest") == 2
    line = one_error_line(capsys, "--seeds: per_batch is not a seed of the contest harness")
    assert "fds_off_tf32" in line
    assert not (work / "study.db").exists()


def test_time_budget_stops_starting_trials(work, capsys):
    # The clock starts after setup, so a slow start (2 cores, cold imports) cannot spend it all.
    assert tune(work, "--time-budget", "0.5", trials="50") == 0
    study = open_study(f"sqlite:///{work / 'study.db'}", "encoder", create=False)
    assert 1 <= len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) < 50


def test_time_budget_spent_by_the_first_model_warns_for_the_second(work, capsys):
    # Each fake trial takes far longer than 0.01 s: the encoder's first trial spends the whole budget.
    assert tune(work, "--time-budget", "0.01", model="both", trials="5") == 0
    err = capsys.readouterr().err
    assert "time budget was spent before the first decoder trial" in err
    assert "before the first encoder trial" not in err
    url = f"sqlite:///{work / 'study.db'}"
    assert len(open_study(url, "encoder", create=False).get_trials()) >= 1


def test_ctrl_c_fails_the_running_trial_kills_its_worker_and_resume_continues(work, process_alive):
    import signal
    import time

    from search.stale import requeue_interrupted

    cmd = [sys.executable, "-m", "search", "tune", "--work-dir", str(work), "--model", "encoder", "--trials", "2",
           "--harness", "contest", "--no-progress", "--trial-timeout", "120", "--worker-command", fake("hang")]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid_file = work / "trials" / "wenet-encoder-contest" / "00000" / "hang.pid"
    for _ in range(300):                     # wait (up to 30 s) until the worker is running
        if pid_file.is_file() and len(pid_file.read_text().split()) == 2:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"the worker never started: {proc.communicate()}")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err.splitlines()[-1]
    assert "Traceback" not in err
    assert not any(process_alive(int(p)) for p in pid_file.read_text().split())

    study = open_study(f"sqlite:///{work / 'study.db'}", "encoder", "contest", create=False)
    S = optuna.trial.TrialState
    n = len(CONTEST_SEEDS)
    assert [t.state for t in study.get_trials()] == [S.FAIL] + [S.WAITING] * (n - 1)   # the other seeds wait
    failed = study.trials[0]
    assert failed.user_attrs["interrupted"] == "SIGINT"
    assert failed.user_attrs["fail_reason"] == "interrupted: the tuner got SIGINT"
    assert tune(work, "--harness", "contest", trials=str(n)) == 0     # the other seeds and the retry
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(n + 1))
    assert [t.state for t in trials] == [S.FAIL] + [S.COMPLETE] * n
    # the next seeds run, then the interrupted seed (baseline) again, once
    assert [t.user_attrs.get("seed") for t in trials] == [*CONTEST_SEEDS, "baseline"]
    assert trials[n].user_attrs["retry_of"] == 0 and trials[n].params == trials[0].system_attrs["fixed_params"]
    assert requeue_interrupted(study) == []                 # once: a later resume does not enqueue it again


def test_each_harness_is_its_own_study(work, tmp_path, capsys):
    """tune --harness contest and --harness serving on one storage: two studies, read apart or together."""
    assert tune(work, "--harness", "contest", trials=str(len(CONTEST_SEEDS))) == 0     # every contest seed
    assert tune(work, "--harness", "serving", trials="2") == 0
    url = f"sqlite:///{work / 'study.db'}"
    assert sorted(optuna.study.get_all_study_names(url)) == ["wenet-encoder-contest", "wenet-encoder-serving"]
    contest = open_study(url, "encoder", "contest", create=False)
    serving = open_study(url, "encoder", "serving", create=False)
    done = (optuna.trial.TrialState.COMPLETE,)
    assert len(contest.get_trials(states=done)) == len(CONTEST_SEEDS) and len(serving.get_trials(states=done)) == 2
    for t in contest.trials:             # recorded as contest trials, sampled from the contest space
        assert t.user_attrs["harness"] == "contest" and "layout.serving" not in t.params
        result = json.loads((Path(t.user_attrs["trial_dir"]) / "result.json").read_text())
        assert result["harness"] == "contest" and config_of(t).layout == "single"
    capsys.readouterr()

    assert main(["status", "--work-dir", str(work)]) == 0          # default: every study present
    lines = [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith("  ")]    # not the time lines
    assert [ln.split(" ")[0] for ln in lines] == ["wenet-encoder-contest", "wenet-encoder-serving"]
    n = len(CONTEST_SEEDS)
    assert f"(encoder, contest harness): {n} trials (complete {n})" in lines[0]
    assert f"(encoder, serving harness): {len(SEEDS)} trials (complete 2, waiting {len(SEEDS) - 2})" in lines[1]
    assert main(["status", "--work-dir", str(work), "--harness", "serving"]) == 0
    assert capsys.readouterr().out.startswith("wenet-encoder-serving (encoder, serving harness)")

    best = best_feasible_trial(contest)
    assert main(["best", "--work-dir", str(work), "--harness", "contest"]) == 0
    assert f"wenet-encoder-contest: contest harness, trial {best.number}," in capsys.readouterr().out
    configs = tmp_path / "configs"
    assert main(["freeze", "--work-dir", str(work), "--harness", "contest", "--out", str(configs)]) == 0
    text = (configs / "encoder.yaml").read_text()
    assert "study wenet-encoder-contest" in text and "# harness contest" in text
    assert BuildConfig.load(configs / "encoder.yaml") == config_of(best)
    assert "wenet-encoder-contest: trial" in capsys.readouterr().out
    assert main(["freeze", "--work-dir", str(work), "--model", "decoder", "--out", str(configs)]) == 2
    one_error_line(capsys, "no study 'wenet-decoder-serving'")

    assert main(["plan", "--work-dir", str(work), "--model", "encoder", "--harness", "contest",
                 "--plan", "sensitivity"]) == 0
    assert "wenet-encoder-contest:" in capsys.readouterr().out
    assert contest.get_trials(states=(optuna.trial.TrialState.WAITING,))


@pytest.mark.parametrize("verb", ["status", "best", "export", "dashboard"])
def test_read_only_verbs_never_write_to_a_foreign_database(verb, tmp_path, capsys):
    import sqlite3
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as con:
        con.execute("create table foo (a)")
    before = db.read_bytes()
    extra = ["--out", str(tmp_path / "x.json")] if verb == "export" else []
    assert main([verb, "--storage", f"sqlite:///{db}", *extra]) == 2
    one_error_line(capsys, "is not an Optuna study database")
    assert db.read_bytes() == before
    with sqlite3.connect(db) as con:
        assert [r[0] for r in con.execute("select name from sqlite_master")] == ["foo"]


def test_random_sampler_is_its_own_study(work, capsys):
    """--sampler random: the baseline TPE is compared with; a study keeps the sampler it was started with."""
    assert tune(work, "--sampler", "random", "--study-name", "enc-random", trials="2") == 0
    study = open_study(f"sqlite:///{work / 'study.db'}", "encoder", study_name="enc-random", create=False)
    assert study.user_attrs["sampler"] == "random" and len(study.trials) >= 2
    capsys.readouterr()
    assert tune(work, "--study-name", "enc-random", trials="1") == 2          # tpe on the random study
    one_error_line(capsys, "is tuned with --sampler random")


def test_status_and_export_list_a_study_under_its_own_name(work, tmp_path, capsys):
    """The random-sampler study beside the TPE one (issue 10's race): the listing verbs show both, in one export;
    best and freeze stay on the model's default study unless --study-name picks another."""
    assert tune(work, trials="1") == 0
    assert tune(work, "--sampler", "random", "--study-name", "enc-random", trials="2") == 0
    capsys.readouterr()
    assert main(["status", "--work-dir", str(work)]) == 0
    out = capsys.readouterr().out
    n = len(SEEDS)                                                    # the seeds not run yet wait
    assert f"wenet-encoder-serving (encoder, serving harness): {n} trials (complete 1, waiting {n - 1})" in out
    assert f"enc-random (encoder, serving harness): {n} trials (complete 2, waiting {n - 2})" in out
    export = tmp_path / "study.json"
    assert main(["export", "--work-dir", str(work), "--out", str(export)]) == 0
    studies = json.loads(export.read_text())["studies"]
    assert [(st["study"], st["user_attrs"]["sampler"], len(st["trials"])) for st in studies] == \
        [("wenet-encoder-serving", "tpe", n), ("enc-random", "random", n)]
    assert main(["export", "--work-dir", str(work), "--harness", "contest", "--out", str(export)]) == 2   # none there
    capsys.readouterr()
    assert main(["freeze", "--work-dir", str(work), "--model", "encoder", "--out", str(tmp_path / "c")]) == 0
    assert "wenet-encoder-serving" in (tmp_path / "c" / "encoder.yaml").read_text().splitlines()[1]


def test_a_storage_with_only_a_named_study_lists_it(work, tmp_path, capsys):
    assert tune(work, "--sampler", "random", "--study-name", "enc-random", trials="1") == 0
    capsys.readouterr()
    assert main(["status", "--work-dir", str(work), "--model", "encoder", "--harness", "serving"]) == 0
    assert "enc-random (encoder, serving harness)" in capsys.readouterr().out
    assert main(["best", "--work-dir", str(work), "--model", "encoder", "--harness", "serving"]) == 2
    one_error_line(capsys, "no study 'wenet-encoder-serving'")      # best wants the default study or --study-name
