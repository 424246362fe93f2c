"""The Optuna objective: sample a config, run it as an isolated trial, record what happened.

Every trial leaves, in the study: user_attrs (config YAML, harness, timings,
per-shape latency, precision counts, constraint or fail_reason) and artifacts
(optuna.artifacts, shown by optuna-dashboard: config.yaml, result.json,
eval.txt, layers.json, build.log, or the worker's stderr on failure).
A failed or timed-out trial raises TrialFailed, which `study.optimize(catch=...)`
turns into a FAIL trial while the study goes on.

While the worker runs, the objective follows its progress.jsonl (search/pruning.py): each
measured case is reported as the partial objective at its step (trial.report), and the run's
pruner (TrialOptions.pruner, made the study's pruner here) may stop the trial; then the worker's
process group is killed and optuna.TrialPruned is raised: a PRUNED trial with user_attrs
prune_reason, prune_step and what was measured. Every trial records duration_s (its whole wall
time: sampling, worker, artifacts), prepare_s / build_s / eval_s for the stages its worker entered
(a pruned or failed one from the worker's stage file) and, when the worker got that far,
engine_cache (hit | miss | off) and engine_cache_key.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from search.errors import SearchError
from search.gpu_share import gpu_lock_path
from search.grid import shape_label
from search.options import TrialOptions
from search.pruning import ProgressWatch, make_pruner
from search.request import STAGE_ATTRS, STAGE_FILE, TrialRequest, stage_seconds
from search.runner import CommandBuilder, TrialOutcome, run_trial, worker_command
from search.space import SearchSpace
from search.toolkit import family_cache
from search.worker import PROGRESS_FILE

log = logging.getLogger("search")

ARTIFACT_FILES_OK = ("config.yaml", "request.json", "result.json", "eval.txt", "layers.json", "build.log")
ARTIFACT_FILES_FAILED = ("config.yaml", "request.json", "worker.stderr.txt", "build.log")
ARTIFACT_FILES_PRUNED = ("config.yaml", "request.json", PROGRESS_FILE, "build.log")
# Per case in user attr "cases": the score, the errors per output and how the case ran (evaluate.case_row).
# The errors live in the study too: a trial's result.json stays on the host it ran on.
CASE_KEYS = ("batch", "length", "latency_ms", "good", "worst_ratio", "a0", "r0", "a1", "r1", "profile",
             "cuda_graph", "host_ms")


class TrialFailed(Exception):
    """The worker crashed, failed or timed out; the message is the one-line reason."""


@dataclass
class TrialContext:
    """What every trial of one tuning process shares: its files, its GPU, the run's TrialOptions."""
    onnx: Path                          # the exported model
    data: Path                          # test data dir
    work_dir: Path                      # trials/ and artifacts/ go here
    timing_cache: Path                  # this process's (one GPU's); each precision family has its own beside it
    cache_dir: Path                     # prepared ONNX, by pass set
    gpu: str | None = None              # CUDA_VISIBLE_DEVICES of the worker
    trial: TrialOptions = field(default_factory=TrialOptions)
    workload: str | None = None         # the workload spec file (the worker registers it)


def artifact_store(work_dir: Path) -> optuna.artifacts.FileSystemArtifactStore:
    base = Path(work_dir) / "artifacts"
    base.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(base_path=str(base))


# Content types of the trial artifacts, by suffix: text, so that the dashboard's link opens them in
# the browser (mimetypes knows neither .yaml nor .log: they were served as downloads).
TEXT = "text/plain; charset=utf-8"
MIMETYPES = {".yaml": TEXT, ".yml": TEXT, ".log": TEXT, ".txt": TEXT, ".jsonl": TEXT,
             ".json": "application/json; charset=utf-8"}


def artifact_mimetype(filename: str) -> str | None:
    """The content type of one of our artifacts by its file name (None: Optuna guesses)."""
    return MIMETYPES.get(Path(filename).suffix.lower())


def upload(trial: optuna.trial.Trial, path: Path, store) -> str | None:
    """upload_artifact across Optuna versions (3.x positional, 4+ keyword-only, with the content type)."""
    try:
        try:
            return optuna.artifacts.upload_artifact(study_or_trial=trial, file_path=str(path), artifact_store=store,
                                                    mimetype=artifact_mimetype(path.name))
        except TypeError:
            return optuna.artifacts.upload_artifact(trial, str(path), store)
    except OSError as exc:      # a full disk must not turn a measured trial into a failed one
        log.warning("trial %d: artifact %s not stored: %s", trial.number, path.name, exc)
        return None


def result_attrs(result: dict[str, Any]) -> dict[str, Any]:
    """The user_attrs of a measured trial: small, JSON-safe, what `best`/`export` show."""
    cases = result.get("cases") or []
    attrs = {
        "objective": result["objective"],
        "constraint": result["constraint"],
        "feasible": bool(result.get("feasible", result["constraint"] <= 0)),
        "prepare_s": result.get("prepare_s"),
        "build_s": result.get("build_s"),
        "eval_s": result.get("eval_s"),
        "gpu_wait_s": result.get("gpu_wait_s"),       # waiting for a GPU shared with other trials
        "latency_ms": {shape_label((c["batch"], c["length"])): c["latency_ms"] for c in cases},
        "bad_cases": [shape_label((c["batch"], c["length"])) for c in cases if not c.get("good")],
        "cases": [{k: c.get(k) for k in CASE_KEYS if k in c} for c in cases],
        "precision_counts": result.get("precision_counts") or {},
        "honoured": (result.get("honoured") or {}).get("honoured"),     # pinned groups run as asked
        "sites": result.get("sites") or {},
        "engine_cache": result.get("engine_cache"),
        "engine_cache_key": result.get("engine_cache_key"),
        "worker_s": result.get("duration_s"),
    }
    if result.get("warnings"):
        attrs["warnings"] = result["warnings"]
    return attrs


class TrialObjective:
    """Callable for study.optimize: one isolated build + evaluation per trial."""

    def __init__(self, space: SearchSpace, context: TrialContext, store=None,
                 command: CommandBuilder = worker_command) -> None:
        if space.options.harness != context.trial.harness:
            raise SearchError(f"the space is for the {space.options.harness} harness, "
                              f"the trials run on {context.trial.harness}")
        self.space = space
        self.context = context
        self.store = store if store is not None else artifact_store(context.work_dir)
        self.command = command
        self.pruner = make_pruner(context.trial)

    def trial_dir(self, trial: optuna.trial.Trial) -> Path:
        return Path(self.context.work_dir) / "trials" / trial.study.study_name / f"{trial.number:05d}"

    def __call__(self, trial: optuna.trial.Trial) -> float:
        started = time.monotonic()
        try:
            return self._run(trial)
        finally:
            try:
                trial.set_user_attr("duration_s", round(time.monotonic() - started, 3))
            except Exception as exc:     # never mask how the trial ended (an interrupt, a storage error)
                log.warning("trial %d: duration_s not stored: %s", trial.number, exc)

    def _run(self, trial: optuna.trial.Trial) -> float:
        s = self.context
        trial.study.pruner = self.pruner        # the run's --pruner decides trial.should_prune()
        trial.set_user_attr("harness", s.trial.harness)
        if s.gpu is not None:
            trial.set_user_attr("gpu", str(s.gpu))
        self._refuse_unsuggested(trial)
        config = self.space.sample(trial)
        cache = family_cache(Path(s.timing_cache), config)     # the run's cache for this precision family
        out = self.trial_dir(trial)
        out.mkdir(parents=True, exist_ok=True)
        config_path = config.save(out / "config.yaml")
        trial.set_user_attr("config_yaml", config.to_yaml())
        trial.set_user_attr("trial_dir", str(out))
        trial.set_user_attr("timing_cache", str(cache.resolve()))

        req = TrialRequest(config=config_path, onnx=Path(s.onnx), data=Path(s.data), out=out,
                           timing_cache=cache, cache_dir=Path(s.cache_dir), trial=s.trial,
                           workload=Path(s.workload) if s.workload else None,
                           gpu_lock=gpu_lock_path(s.work_dir, s.gpu))
        (out / PROGRESS_FILE).unlink(missing_ok=True)
        (out / STAGE_FILE).unlink(missing_ok=True)
        watch = ProgressWatch(trial, out / PROGRESS_FILE, s.trial)
        outcome = run_trial(req, gpu=s.gpu, command=self.command, watch=watch)
        trial.set_user_attr("status", outcome.status)
        trial.set_user_attr("wall_s", round(outcome.wall_s, 3))
        if outcome.status == "pruned":
            return self._pruned(trial, out, outcome, watch)
        if not outcome.ok:
            return self._failed(trial, out, outcome)

        watch.finish(outcome.result)            # the steps measured between polls, for later trials
        for key, value in result_attrs(outcome.result).items():
            trial.set_user_attr(key, value)
        for name in ARTIFACT_FILES_OK:
            if (out / name).is_file():
                upload(trial, out / name, self.store)
        return float(outcome.result["objective"])

    def _refuse_unsuggested(self, trial: optuna.trial.Trial) -> None:
        """A trial enqueued with a choice this space cannot make fails with the reason, before any
        build: run, it would be another config under its plan label (tune checks the waiting ones
        at start; this catches those enqueued again while it runs)."""
        frozen = next((t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                       if t.number == trial.number), None)
        lost = self.space.unsuggested(frozen.system_attrs.get("fixed_params") or {}) if frozen else []
        if lost:
            reason = f"enqueued with {', '.join(lost)}, which this run's space lacks (--allow-int8? --plugin-lib?)"
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailed(f"refused: {reason}")

    @staticmethod
    def _stage_times(trial: optuna.trial.Trial, out: Path) -> None:
        """A worker stopped before its result still says where its time went: the seconds of each
        stage it entered, the last one up to its end (a pruned trial's evaluation so far)."""
        spent = stage_seconds(out)
        for stage, key in STAGE_ATTRS.items():
            if stage in spent:
                trial.set_user_attr(key, round(spent[stage], 3))

    def _failed(self, trial: optuna.trial.Trial, out: Path, outcome: TrialOutcome) -> float:
        trial.set_user_attr("fail_reason", outcome.reason)
        self._stage_times(trial, out)
        self._drop_plans(out)
        for name in ARTIFACT_FILES_FAILED:
            if (out / name).is_file():
                upload(trial, out / name, self.store)
        raise TrialFailed(f"{outcome.status}: {outcome.reason}")

    def _pruned(self, trial: optuna.trial.Trial, out: Path, outcome: TrialOutcome, watch: ProgressWatch) -> float:
        for key, value in watch.partial_attrs().items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("prune_reason", outcome.reason)
        self._stage_times(trial, out)
        self._drop_plans(out)
        for name in ARTIFACT_FILES_PRUNED:
            if (out / name).is_file():
                upload(trial, out / name, self.store)
        log.info("trial %d pruned: %s", trial.number, outcome.reason)
        raise optuna.TrialPruned(outcome.reason)

    def _drop_plans(self, out: Path) -> None:
        """A killed or failed worker leaves its engine behind (the engine cache keeps its own link)."""
        if self.context.trial.keep_plans:
            return
        for plan in out.glob("*.plan"):
            try:
                plan.unlink()
            except OSError as exc:
                log.warning("%s not removed: %s", plan, exc)
