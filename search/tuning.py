"""`tune`: seed the study, then run the optimize loop on every GPU.

One GPU: the loop runs in this process. Several GPUs: one loop process per GPU
(`python -m search.gpu_loop`), all on the same storage, each with its own
sampler seed (equal seeds would sample equal trials), its own
CUDA_VISIBLE_DEVICES for its trial workers and its own timing cache
(work/timing-<model>-gpu<id>.cache; with one GPU work/timing-<model>.cache): a
shared cache would need a lock held through every build. This process shows
the progress bar, polling the storage.

--trials N runs N new trials per model (split across the GPUs); --time-budget S
stops starting trials after S seconds of tuning (split evenly over the models);
with both, whichever comes first. A trial in progress always runs to its end or
timeout. The budget counts tuning only: each loop starts its clock once its
setup (opening the storage, seeding, building the space) is done, so a slow
start does not eat the budget, and time a model leaves unused goes to the next.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from workload.shapes import MODELS

from search.errors import SearchError
from search.grid import parse_grid
from search.objective import TrialFailed, TrialObjective, TrialSettings, artifact_store
from search.runner import REPO_ROOT, TrialRequest, worker_args, worker_command
from search.space import SearchSpace, SpaceOptions, registered_passes, registered_plugins
from search.storage import feasible_trials, open_study, trial_constraint

log = logging.getLogger("search")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
POLL_S = 2.0


@dataclass
class TuneOptions:
    models: tuple[str, ...]
    n_trials: int | None = None               # new trials per model
    time_budget_s: float | None = None        # for all models together
    gpus: tuple[str, ...] = ("0",)
    storage: str = "sqlite:///work/study.db"
    study_name: str | None = None
    trial_timeout_s: float | None = 1800.0
    onnx_dir: str = "work/onnx"
    data_dir: str = "work/data"
    work_dir: str = "work"
    grid: str | None = None
    mode: str = "robust"
    runs: int | None = None
    warmup: int | None = None
    seed: int | None = None
    max_opt_level: int = 5
    allow_int8: bool = False
    group_granularity: str = "kind"
    num_blocks: int | None = None
    plugin_libs: tuple[str, ...] = ()
    worker_command: tuple[str, ...] | None = None   # stands in for `python -m search.worker` (tests)
    keep_plans: bool = False
    progress: bool = True

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "TuneOptions":
        data = json.loads(text)
        for key in ("models", "gpus", "plugin_libs"):
            data[key] = tuple(data[key])
        if data.get("worker_command") is not None:
            data["worker_command"] = tuple(data["worker_command"])
        return cls(**data)

    def validate(self) -> None:
        bad = [m for m in self.models if m not in MODELS]
        if bad or not self.models:
            raise SearchError(f"unknown model {bad[0] if bad else ''!r}; expected encoder, decoder or both")
        if self.n_trials is None and self.time_budget_s is None:
            raise SearchError("say how long to tune: --trials N and/or --time-budget SECONDS")
        if self.n_trials is not None and self.n_trials < 1:
            raise SearchError(f"--trials {self.n_trials}: need at least 1")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise SearchError(f"--time-budget {self.time_budget_s:g}: need a positive number of seconds")
        if self.trial_timeout_s is not None and self.trial_timeout_s <= 0:
            raise SearchError(f"--trial-timeout {self.trial_timeout_s:g}: need a positive number of seconds")
        if not self.gpus:
            raise SearchError("--gpus names no GPU")
        if self.study_name and len(self.models) > 1:
            raise SearchError("--study-name needs a single --model (each model has its own study)")
        if not 0 <= self.max_opt_level <= 5:
            raise SearchError(f"--max-opt-level {self.max_opt_level} is outside 0..5")
        if self.runs is not None and self.runs < 1:
            raise SearchError(f"--runs {self.runs}: need at least 1")
        parse_grid(self.grid)
        for model in self.models:
            onnx = self.onnx_path(model)
            if not onnx.is_file():
                raise SearchError(f"{onnx} does not exist (export it first: python3 -m workload export)")
        if not Path(self.data_dir).is_dir():
            raise SearchError(f"test data directory {self.data_dir} does not exist (python3 -m workload data)")
        for lib in self.plugin_libs:
            if not Path(lib).is_file():
                raise SearchError(f"plugin library {lib} does not exist")
        if self.allow_int8:
            for model in self.models:
                calib = Path(self.data_dir) / f"calibration-{model}.npz"
                if not calib.is_file():
                    raise SearchError(f"--allow-int8 needs {calib} (python3 -m workload data)")

    def onnx_path(self, model: str) -> Path:
        return Path(self.onnx_dir) / f"{model}.onnx"


def parse_gpus(text: str) -> tuple[str, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise SearchError(f"--gpus {text!r}: expected GPU ids like 0 or 0,1")
    if len(set(parts)) != len(parts):
        raise SearchError(f"--gpus {text!r} repeats a GPU")
    return tuple(parts)


def count_blocks(onnx_path: Path) -> int:
    """Encoder/decoder blocks in an export, from its node-name scopes (`/encoders.11/`)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    pat = re.compile(r"/(?:encoders|decoders)\.(\d+)/")
    found = {int(m.group(1)) for n in model.graph.node for m in [pat.search(n.name)] if m}
    if not found:
        raise SearchError(f"{onnx_path}: no /encoders.N/ or /decoders.N/ node scopes; pass --num-blocks")
    return max(found) + 1


def make_space(opts: TuneOptions, model: str) -> SearchSpace:
    passes = registered_passes(model)
    plugins = [p for p in registered_plugins(model) if p not in passes]
    num_blocks = opts.num_blocks
    if opts.group_granularity == "block" and num_blocks is None:
        num_blocks = count_blocks(opts.onnx_path(model))
    options = SpaceOptions(allow_int8=opts.allow_int8, max_opt_level=opts.max_opt_level,
                           group_granularity=opts.group_granularity, num_blocks=num_blocks)
    return SearchSpace(model, passes, plugins, options=options)


def seed_study(study: optuna.Study, space: SearchSpace) -> int:
    """Enqueue the known configs once per study (a resumed study is not seeded again).

    Returns how many were enqueued: a seed equal to an earlier one (e.g. every-pass
    FP32 when no pass is registered is the baseline) is enqueued once.
    """
    if study.user_attrs.get("seeded"):
        return 0
    labels, seen = [], set()
    for label, cfg in space.labelled_seeds():
        params = space.to_params(cfg)
        key = tuple(sorted(params.items(), key=lambda kv: kv[0]))
        if key in seen:
            continue
        seen.add(key)
        study.enqueue_trial(params, user_attrs={"seed": label}, skip_if_exists=True)
        labels.append(label)
    study.set_user_attr("seeded", labels)
    return len(labels)


def timing_cache_path(opts: TuneOptions, model: str, gpu: str) -> Path:
    name = f"timing-{model}.cache" if len(opts.gpus) == 1 else f"timing-{model}-gpu{gpu}.cache"
    return Path(opts.work_dir) / name


def command_builder(opts: TuneOptions) -> Callable[[TrialRequest], list[str]]:
    if opts.worker_command is None:
        return worker_command
    prefix = list(opts.worker_command)
    return lambda req: prefix + worker_args(req)


def trial_settings(opts: TuneOptions, model: str, gpu: str) -> TrialSettings:
    return TrialSettings(onnx=opts.onnx_path(model), data=Path(opts.data_dir), work_dir=Path(opts.work_dir),
                         timing_cache=timing_cache_path(opts, model, gpu),
                         cache_dir=Path(opts.work_dir) / "prepared", gpu=gpu,
                         trial_timeout_s=opts.trial_timeout_s, mode=opts.mode, runs=opts.runs,
                         warmup=opts.warmup, grid=opts.grid, plugin_libs=tuple(Path(p) for p in opts.plugin_libs),
                         keep_plan=opts.keep_plans)


class _QuietFailedTrials(logging.Filter):
    """Optuna logs every caught failure with all ~30 parameters; the reporter prints one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Trial ") and ("failed with parameters" in msg or "failed with value None" in msg))


def gpu_loop(opts: TuneOptions, model: str, gpu: str, n_trials: int | None, budget_s: float | None,
             callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = (),
             space: SearchSpace | None = None) -> float:
    """study.optimize on one GPU until n_trials ran or budget_s seconds of tuning passed.

    The clock starts after setup; returns the seconds spent tuning.
    """
    index = opts.gpus.index(gpu)
    seed = None if opts.seed is None else opts.seed + index
    study = open_study(opts.storage, model, opts.study_name, seed=seed)
    space = space or make_space(opts, model)
    objective = TrialObjective(space, trial_settings(opts, model, gpu), artifact_store(Path(opts.work_dir)),
                               command=command_builder(opts))
    if (budget_s is not None and budget_s <= 0) or n_trials == 0:
        return 0.0
    # Records of optuna.* loggers reach the handlers of the "optuna" logger: filter there.
    handlers = logging.getLogger("optuna").handlers
    quiet = _QuietFailedTrials()
    for h in handlers:
        h.addFilter(quiet)
    start = time.monotonic()
    try:
        study.optimize(objective, n_trials=n_trials, timeout=budget_s, catch=(TrialFailed,),
                       callbacks=list(callbacks))
    finally:
        for h in handlers:
            h.removeFilter(quiet)
    return time.monotonic() - start


# --- progress ----------------------------------------------------------------------------
def describe(model: str, t: FrozenTrial) -> str:
    where = f" gpu{t.user_attrs['gpu']}" if "gpu" in t.user_attrs else ""
    seed = f" [{t.user_attrs['seed']}]" if "seed" in t.user_attrs else ""
    if t.state == TrialState.COMPLETE:
        c = trial_constraint(t)
        feas = "feasible" if c is not None and c <= 0 else f"infeasible (constraint {c:.3g})"
        return (f"{model} trial {t.number}{seed}{where}: {t.value:.3f} ms {feas}, "
                f"build {t.user_attrs.get('build_s', 0):.1f} s, eval {t.user_attrs.get('eval_s', 0):.1f} s")
    if t.state == TrialState.FAIL:
        return f"{model} trial {t.number}{seed}{where}: FAIL {t.user_attrs.get('fail_reason', '(run interrupted)')}"
    return f"{model} trial {t.number}{seed}{where}: {t.state.name}"


class Progress:
    """A tqdm bar over trials when tqdm is there (it is optional on the GPU host), else lines."""

    def __init__(self, model: str, total: int | None, enabled: bool = True) -> None:
        self.model = model
        self.seen: set[int] = set()
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=f"tune {model}", unit="trial", file=sys.stderr)
            except ImportError:
                pass

    def report(self, trial: FrozenTrial) -> None:
        if trial.number in self.seen:
            return
        self.seen.add(trial.number)
        line = describe(self.model, trial)
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
            self.bar.update(1)
        else:
            print(line, file=sys.stderr, flush=True)

    def poll(self, study: optuna.Study, before: set[int]) -> None:
        for t in study.get_trials(deepcopy=False, states=FINISHED):
            if t.number not in before:
                self.report(t)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _shares(n: int | None, k: int) -> list[int | None]:
    if n is None:
        return [None] * k
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def tune_model(opts: TuneOptions, model: str, budget_s: float | None) -> dict[str, Any]:
    study = open_study(opts.storage, model, opts.study_name, seed=opts.seed)
    space = make_space(opts, model)
    seed_study(study, space)
    # Trials that already ran (or run elsewhere / went stale); WAITING seeds are this run's.
    before = {t.number for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING}
    if budget_s is not None and budget_s <= 0:
        print(f"warning: the time budget was spent before the first {model} trial could start "
              f"(raise --time-budget)", file=sys.stderr)
    progress = Progress(model, opts.n_trials, opts.progress)
    try:
        if len(opts.gpus) == 1:
            tuning_s = gpu_loop(opts, model, opts.gpus[0], opts.n_trials, budget_s,
                                callbacks=[lambda s, t: progress.report(t)], space=space)
        else:
            tuning_s = _run_children(opts, model, budget_s, study, progress, before)
        progress.poll(study, before)
    finally:
        progress.close()
    new = [t for t in study.get_trials(deepcopy=False, states=FINISHED) if t.number not in before]
    states = [t.state for t in new]
    failed = [t for t in new if t.state == TrialState.FAIL]
    feasible = feasible_trials(study)
    best = min(feasible, key=lambda t: (t.value, t.number)) if feasible else None
    return {"model": model, "study": study.study_name, "new_trials": len(states),
            **{s.name.lower(): states.count(s) for s in FINISHED},
            "best_value": best.value if best else None, "best_trial": best.number if best else None,
            "last_fail_reason": failed[-1].user_attrs.get("fail_reason") if failed else None,
            "tuning_s": tuning_s}


def _run_children(opts: TuneOptions, model: str, budget_s: float | None, study: optuna.Study,
                  progress: Progress, before: set[int]) -> float:
    """One gpu_loop process per GPU; returns the wall seconds they ran (their setup included)."""
    logs = Path(opts.work_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[tuple[str, subprocess.Popen, Path]] = []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    start = time.monotonic()
    try:
        for gpu, share in zip(opts.gpus, _shares(opts.n_trials, len(opts.gpus))):
            if share == 0:
                continue
            log_path = logs / f"tune-{model}-gpu{gpu}.log"
            cmd = [sys.executable, "-m", "search.gpu_loop", "--options", opts.to_json(), "--model", model,
                   "--gpu", gpu, "--n-trials", "" if share is None else str(share),
                   "--budget", "" if budget_s is None else repr(max(budget_s, 0.0))]
            with open(log_path, "ab") as f:
                procs.append((gpu, subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env), log_path))
        while any(p.poll() is None for _, p, _ in procs):
            progress.poll(study, before)
            time.sleep(POLL_S)
    except BaseException:
        for _, p, _ in procs:
            if p.poll() is None:
                p.terminate()
        for _, p, _ in procs:
            p.wait()
        raise
    failed = [(gpu, p.returncode, lp) for gpu, p, lp in procs if p.returncode != 0]
    if failed:
        gpu, rc, lp = failed[0]
        raise SearchError(f"the tuning process of GPU {gpu} exited with status {rc}; see {lp}")
    return time.monotonic() - start


def tune(opts: TuneOptions) -> list[dict[str, Any]]:
    opts.validate()
    spent = 0.0                     # seconds of tuning so far (setup excluded)
    summaries = []
    for i, model in enumerate(opts.models):
        budget = None
        if opts.time_budget_s is not None:
            budget = (opts.time_budget_s - spent) / (len(opts.models) - i)
        summary = tune_model(opts, model, budget)
        spent += summary["tuning_s"]
        summaries.append(summary)
    return summaries
