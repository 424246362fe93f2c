"""`tune`: seed the study, then run the optimize loop on every GPU.

The study is the model's for the run's harness (`<spec's study>-<harness>`, e.g. `wenet-encoder-serving`,
search/storage.py);
its options are search/options.py's TuneOptions.

One GPU and one worker: the loop runs in this process. Several GPUs, or --workers-per-gpu N > 1:
one loop process per (GPU, worker slot) (`python -m search.gpu_loop`), all on the same storage,
each with its own sampler seed (equal seeds would sample equal trials) and CUDA_VISIBLE_DEVICES
for its trial workers. The timing cache is one per GPU
(work/timing-<model>-<harness>-trt<version>-<gpu model>-gpu<id>.cache; with one GPU
without -gpu<id>, so a contest and a serving run can go side by side); the workers of one GPU
share it (each build merges the others' entries back, engine/timing_cache.py), and their builds
overlap while each measurement has the GPU alone (search/gpu_share.py). This process shows
the progress bar, polling the storage.

--trials N runs N new trials per model (split across the GPUs); --time-budget S
stops starting trials after S seconds of tuning (split evenly over the models);
with both, whichever comes first. A trial in progress always runs to its end or
timeout. The budget counts tuning only: each loop starts its clock once its
setup (opening the storage, seeding, building the space) is done, so a slow
start does not eat the budget, and time a model leaves unused goes to the next.

Reliability (several tuners on one storage, tuners that get killed):
- Each run has an id (user attr tuner_run on its trials): its summary and progress count only
  the trials it ran, whatever other processes on the storage do meanwhile.
- Creating and seeding the study, and enqueueing interrupted seeds again, happen under the
  storage's lock (search/storage.py), so N tuners started together neither crash nor run a seed twice.
- Ctrl-C or SIGTERM (search/__main__.py, gpu_loop.py turn it into KeyboardInterrupt) fails the
  running trial with user attrs fail_reason and interrupted, and the runner kills its worker; a
  tuner killed with SIGKILL leaves a RUNNING trial that fails once its heartbeat is stale
  (stale.fail_stale, checked every heartbeat interval while tuning). Either way an interrupted
  seed or planned trial is enqueued again once (stale.requeue_interrupted).
- Every worker runs under a guard (search/guard.py) that kills the worker's process group when the
  process that started it dies, even by SIGKILL: no build outlives its tuner.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from workload import registry

from search.errors import SearchError
from search.guard import guarded
from search.trial_objective import TrialContext, TrialFailed, TrialObjective, artifact_store
from search.options import SpaceOptions, TuneOptions
from search.request import TrialRequest
from search.runner import REPO_ROOT, worker_args, worker_command
from search.seeds import check_seed_labels, seed_study
from search.rewrites import loadable_plugins, registered_passes
from search.space import SearchSpace, block_count
from search.locking import storage_lock, study_lock
from search.stale import StaleWatch, requeue_interrupted
from search.storage import feasible_trials, make_sampler, open_study, trial_constraint
from search.toolkit import timing_cache_file

log = logging.getLogger("search")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
POLL_S = 2.0


def make_space(options: SpaceOptions, model: str, onnx: Path, plugin_libs: Sequence[str] = ()) -> SearchSpace:
    """The model's space over the registered passes and the plugins TensorRT can load with `plugin_libs`
    (blocks counted in `onnx` when needed).

    `onnx` is also the graph whose op types make the layer groups of a spec that groups by op type."""
    registry.bind_onnx(model, onnx)
    passes = registered_passes(model)
    plugins = [p for p in loadable_plugins(model, plugin_libs) if p not in passes]
    if options.group_granularity == "block":
        options = dataclasses.replace(options, num_blocks=block_count(onnx, model, options.num_blocks))
    return SearchSpace(model, passes, plugins, options=options)


def timing_cache_path(opts: TuneOptions, model: str, gpu: str) -> Path:
    return timing_cache_file(Path(opts.study.work_dir), model, opts.trial.harness, gpu, len(opts.gpus) > 1)


def command_builder(opts: TuneOptions) -> Callable[[TrialRequest], list[str]]:
    if opts.worker_command is None:
        return lambda req: guarded([str(c) for c in worker_command(req)])
    prefix = list(opts.worker_command)
    return lambda req: guarded(prefix + worker_args(req))


def new_run_id() -> str:
    """Names one tuning run (user attr tuner_run of its trials): host, pid and a random tail."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RunObjective:
    """One tuning run's objective: tags each trial with the run and its workers per GPU (bench/study_throughput.py
    compares runs by them), and records an interruption.

    Ctrl-C / SIGTERM (KeyboardInterrupt) fails the running trial (Optuna) after it gets user
    attrs interrupted (which signal) and fail_reason, so a later run knows to run it again.
    """

    def __init__(self, objective: Callable[[optuna.trial.Trial], float], run_id: str, workers_per_gpu: int = 1) -> None:
        self.objective = objective
        self.run_id = run_id
        self.workers_per_gpu = workers_per_gpu

    def __call__(self, trial: optuna.trial.Trial) -> float:
        trial.set_user_attr("tuner_run", self.run_id)
        trial.set_user_attr("workers_per_gpu", self.workers_per_gpu)
        try:
            return self.objective(trial)
        except KeyboardInterrupt as exc:
            why = str(exc) or "SIGINT"
            try:
                trial.set_user_attr("interrupted", why)
                trial.set_user_attr("fail_reason", f"interrupted: the tuner got {why}")
            except BaseException:       # a second signal, a lost storage: Optuna still fails it
                pass
            raise


# The flag that puts a fixed parameter of an enqueued trial into the space, where one does.
FLAG_FOR_PARAM = (("int8", "--allow-int8"), ("calibrator", "--allow-int8"), ("prec.int8", "--allow-int8"),
                  ("prec.fp16+int8", "--allow-int8"), ("plugin.", "--plugin-lib with its creator"))


def check_waiting_trials(study: optuna.Study, space: SearchSpace) -> None:
    """Refuse to start where a waiting trial is enqueued with a choice this space cannot make.

    Optuna drops a fixed parameter the space never suggests, so such a trial would run a
    different config (an INT8 plan as FP16) under its plan label: a silent wrong result.
    """
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        lost = space.unsuggested(t.system_attrs.get("fixed_params") or {})
        if lost:
            flags = sorted({f for k in lost for prefix, f in FLAG_FOR_PARAM if k.startswith(prefix)})
            label = t.user_attrs.get("plan") or t.user_attrs.get("seed") or "enqueued"
            raise SearchError(f"{study.study_name}: waiting trial {t.number} ({label}) needs {', '.join(lost[:3])}"
                              f"{' ...' if len(lost) > 3 else ''}, which this space lacks"
                              + (f" (tune with {' and '.join(flags)})" if flags else " (tune with the space it was made in)"))


def pin_waiting_trials(study: optuna.Study, space: SearchSpace) -> None:
    """A waiting seed or plan names a whole config: a dimension this space has and it lacks (it was queued in a
    smaller space: no --plugin-lib, no --allow-int8) is pinned to its default, not left to the sampler.

    2026-12-07: plans queued without our plugin library ran with the sampler's plugin choices, so the
    sensitivity trials differed in more than their pinned group."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        label, fixed = t.user_attrs.get("plan") or t.user_attrs.get("seed"), t.system_attrs.get("fixed_params")
        if not label or not fixed:
            continue                        # a partial enqueue of the user's own: the sampler fills it, as Optuna does
        added = space.unpinned(fixed)
        if added:
            study._storage.set_trial_system_attr(t._trial_id, "fixed_params", {**fixed, **added})
            print(f"note: waiting trial {t.number} ({label}) was queued without {', '.join(sorted(added))}: "
                  "pinned to their defaults", file=sys.stderr)


def trial_context(opts: TuneOptions, model: str, gpu: str) -> TrialContext:
    work = Path(opts.study.work_dir)
    return TrialContext(onnx=opts.onnx_path(model), data=opts.data_path(model), work_dir=work,
                        timing_cache=timing_cache_path(opts, model, gpu), cache_dir=work / "prepared",
                        gpu=gpu, trial=opts.trial, workload=registry.get(model).source)


def open_run_study(opts: TuneOptions, model: str, seed: int | None) -> optuna.Study:
    study = open_study(opts.study.storage, model, opts.trial.harness, opts.study.study_name,
                       sampler=make_sampler(seed, kind=opts.sampler))
    used = study.user_attrs.get("sampler")
    if used is None:
        study.set_user_attr("sampler", opts.sampler)
    elif used != opts.sampler:      # a mixed study compares nothing: one sampler per study
        raise SearchError(f"study {study.study_name} is tuned with --sampler {used}; "
                          f"give --sampler {opts.sampler} its own --study-name")
    return study


class _QuietFailedTrials(logging.Filter):
    """Optuna logs every caught failure with all ~30 parameters; the reporter prints one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Trial ") and ("failed with parameters" in msg or "failed with value None" in msg))


def gpu_loop(opts: TuneOptions, model: str, gpu: str, n_trials: int | None, budget_s: float | None,
             callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = (),
             space: SearchSpace | None = None, run_id: str | None = None,
             study: optuna.Study | None = None, slot: int | None = None) -> float:
    """study.optimize on one GPU until n_trials ran or budget_s seconds of tuning passed.

    The clock starts after setup; returns the seconds spent tuning. Trials get user attr
    tuner_run = run_id (default: a new id). study: the one tune_model opened (one GPU), else
    opened here with the sampler seed of the loop's slot (its index among every GPU's workers;
    default: the GPU's index).
    """
    if study is None:
        index = opts.gpus.index(gpu) if slot is None else slot
        study = open_run_study(opts, model, None if opts.seed is None else opts.seed + index)
    space = space or make_space(opts.space, model, opts.onnx_path(model), opts.trial.plugin_libs)
    objective = TrialObjective(space, trial_context(opts, model, gpu), artifact_store(Path(opts.study.work_dir)),
                               command=command_builder(opts))
    objective = RunObjective(objective, run_id or new_run_id(), workers_per_gpu=opts.workers_per_gpu)
    if (budget_s is not None and budget_s <= 0) or n_trials == 0:
        return 0.0
    # Records of optuna.* loggers reach the handlers of the "optuna" logger: filter there.
    handlers = logging.getLogger("optuna").handlers
    quiet = _QuietFailedTrials()
    for h in handlers:
        h.addFilter(quiet)
    start = time.monotonic()
    try:
        with StaleWatch(study):
            study.optimize(objective, n_trials=n_trials, timeout=budget_s, catch=(TrialFailed,),
                           callbacks=list(callbacks))
    finally:
        for h in handlers:
            h.removeFilter(quiet)
    return time.monotonic() - start


# --- progress ----------------------------------------------------------------------------
def describe(model: str, t: FrozenTrial) -> str:
    """One line per finished trial; `model` names the study (e.g. "encoder serving")."""
    where = f" gpu{t.user_attrs['gpu']}" if "gpu" in t.user_attrs else ""
    seed = f" [{t.user_attrs['seed']}]" if "seed" in t.user_attrs else ""
    if t.state == TrialState.COMPLETE:
        c = trial_constraint(t)
        feas = "feasible" if c is not None and c <= 0 else f"infeasible (constraint {c:.3g})"
        return (f"{model} trial {t.number}{seed}{where}: {t.value:.3f} ms {feas}, "
                f"build {t.user_attrs.get('build_s', 0):.1f} s, eval {t.user_attrs.get('eval_s', 0):.1f} s")
    if t.state == TrialState.FAIL:
        return f"{model} trial {t.number}{seed}{where}: FAIL {t.user_attrs.get('fail_reason', '(run interrupted)')}"
    if t.state == TrialState.PRUNED:
        return f"{model} trial {t.number}{seed}{where}: PRUNED {t.user_attrs.get('prune_reason', '')}".rstrip()
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

    def poll(self, study: optuna.Study, run_id: str) -> None:
        for t in own_trials(study, run_id):
            self.report(t)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _shares(n: int | None, k: int) -> list[int | None]:
    if n is None:
        return [None] * k
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def own_trials(study: optuna.Study, run_id: str) -> list[FrozenTrial]:
    """The finished trials of one tuning run (user attr tuner_run), whoever else uses the study."""
    return [t for t in study.get_trials(deepcopy=False, states=FINISHED) if t.user_attrs.get("tuner_run") == run_id]


def tune_model(opts: TuneOptions, model: str, budget_s: float | None) -> dict[str, Any]:
    space = make_space(opts.space, model, opts.onnx_path(model), opts.trial.plugin_libs)
    with storage_lock(opts.study.storage):      # create, seed, re-enqueue: one process at a time
        study = open_run_study(opts, model, opts.seed)
        seeded_before = study.user_attrs.get("seeded")
        seed_study(study, space, opts.seeds)
        if seeded_before is not None and opts.seeds is not None:
            print(f"note: {study.study_name} was seeded when it was created ({', '.join(seeded_before) or 'none'}); "
                  f"--seeds applies to a new study", file=sys.stderr)
        requeue_interrupted(study)
        check_waiting_trials(study, space)
        pin_waiting_trials(study, space)
    run_id = new_run_id()
    if budget_s is not None and budget_s <= 0:
        print(f"warning: the time budget was spent before the first {model} trial could start "
              f"(raise --time-budget)", file=sys.stderr)
    progress = Progress(f"{model} {opts.trial.harness}", opts.n_trials, opts.progress)
    try:
        if len(opts.gpus) == 1 and opts.workers_per_gpu == 1:
            tuning_s = gpu_loop(opts, model, opts.gpus[0], opts.n_trials, budget_s,
                                callbacks=[lambda s, t: progress.report(t)], space=space, run_id=run_id,
                                study=study)
        else:
            tuning_s = _run_children(opts, model, budget_s, study, progress, run_id)
        progress.poll(study, run_id)
    finally:
        progress.close()
    new = own_trials(study, run_id)
    states = [t.state for t in new]
    failed = [t for t in new if t.state == TrialState.FAIL]
    feasible = feasible_trials(study)
    best = min(feasible, key=lambda t: (t.value, t.number)) if feasible else None
    return {"model": model, "harness": opts.trial.harness, "study": study.study_name, "new_trials": len(states),
            **{s.name.lower(): states.count(s) for s in FINISHED},
            "best_value": best.value if best else None, "best_trial": best.number if best else None,
            "last_fail_reason": failed[-1].user_attrs.get("fail_reason") if failed else None,
            "tuning_s": tuning_s}


def _run_children(opts: TuneOptions, model: str, budget_s: float | None, study: optuna.Study,
                  progress: Progress, run_id: str) -> float:
    """One gpu_loop process per (GPU, worker slot); returns the wall seconds they ran (their setup included)."""
    logs = Path(opts.study.work_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[tuple[str, subprocess.Popen, Path]] = []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    start = time.monotonic()
    try:
        slots = [(gpu, k) for gpu in opts.gpus for k in range(opts.workers_per_gpu)]
        for slot, ((gpu, k), share) in enumerate(zip(slots, _shares(opts.n_trials, len(slots)))):
            if share == 0:
                continue
            worker = f"-w{k}" if opts.workers_per_gpu > 1 else ""
            log_path = logs / f"tune-{model}-{opts.trial.harness}-gpu{gpu}{worker}.log"
            cmd = [sys.executable, "-m", "search.gpu_loop", "--options", opts.to_json(), "--model", model,
                   "--gpu", gpu, "--slot", str(slot), "--n-trials", "" if share is None else str(share),
                   "--budget", "" if budget_s is None else repr(max(budget_s, 0.0)), "--run-id", run_id]
            with open(log_path, "ab") as f:
                # Own process group under the guard: a killed tuner takes its loops with it.
                procs.append((gpu, subprocess.Popen(guarded(cmd), stdout=f, stderr=subprocess.STDOUT, env=env,
                                                    stdin=subprocess.DEVNULL, start_new_session=True), log_path))
        while any(p.poll() is None for _, p, _ in procs):
            progress.poll(study, run_id)
            time.sleep(POLL_S)
    except BaseException:       # Ctrl-C / SIGTERM: each loop fails its running trial and exits
        for _, p, _ in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
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
    check_seed_labels(opts.trial.harness, opts.seeds)
    for model in opts.study.models:     # every model's space, before any study is written
        make_space(opts.space, model, opts.onnx_path(model), opts.trial.plugin_libs)
    spent = 0.0                     # seconds of tuning so far (setup excluded)
    summaries = []
    models = opts.study.models
    for i, model in enumerate(models):
        budget = None
        if opts.time_budget_s is not None:
            budget = (opts.time_budget_s - spent) / (len(models) - i)
        summary = tune_model(opts, model, budget)
        spent += summary["tuning_s"]
        summaries.append(summary)
    return summaries
