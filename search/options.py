"""Every option of a tuning run, declared once: a dataclass field whose metadata is its CLI flag.

    @dataclass(frozen=True)
    class TrialOptions:
        runs: int | None = opt(None, "--runs", type=int, help="timed runs per test case")

`add_arguments(parser, cls)` adds a flag for every such field (nested option groups
included), `from_args(cls, args)` builds the dataclass back from the parsed
arguments (a flag not given keeps the field's default), and `to_json`/`from_json`
carry a run's options to another process (gpu_loop, the trial worker's request).
Adding an option means adding one field.

Groups:
  StudyOptions  where the studies are: work dir, storage URL, models, study name
  TrialOptions  what every trial of a run shares and the trial worker receives
  SpaceOptions  what shapes the search space (search/space.py)
  TuneOptions   `tune`: the three groups above plus how long and where to tune
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from engine.config import TACTIC_SOURCES
from engine.harness import DEFAULT_HARNESS, HARNESSES
from workload import registry
from workload.errors import WorkloadError
from workload.shapes import MAX_BATCH, MODELS

from search import preflight
from search.errors import SearchError
from search.grid import parse_grid
from search.option_values import parse_command, parse_gpus, parse_names, parse_seed_labels
from search.storage import default_storage_url, parse_url

HARNESS_NAMES = tuple(HARNESSES)          # ("contest", "serving")
GRANULARITIES = ("kind", "block")
DEFAULT_WORK = "work"
SEED_MAX = 2**32 - 1                      # numpy's (TPESampler's) largest seed


def opt(default: Any, flag: str, help: str = "", *, parse: Callable[[Any], Any] | None = None,
        shown: str | None = None, **argparse_kwargs: Any) -> Any:
    """A dataclass field with its command-line flag.

    help: `%(default)s` is replaced by the field's default (or `shown`).
    parse: turns the flag's value into the field's (e.g. "0,1" -> ("0", "1")); a
      SearchError it raises becomes the CLI's one-line error.
    argparse_kwargs: passed to add_argument (type, choices, action, metavar...).
    """
    meta = {"flag": flag, "help": help, "parse": parse, "shown": shown, "argparse": argparse_kwargs}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def group(cls: type) -> Any:
    """A field holding a nested option group (its flags are added with its parent's)."""
    return field(default_factory=cls, metadata={"group": True})


def _shown(f: dataclasses.Field) -> str:
    if f.metadata.get("shown") is not None:
        return f.metadata["shown"]
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of `cls` that have a flag, nested groups included, in declaration order."""
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("group"):
            out += option_fields(_hints(cls)[f.name])
        elif "flag" in f.metadata and f.metadata["flag"]:
            out.append(f)
    return out


def add_arguments(parser: argparse.ArgumentParser, cls: type, only: Iterable[str] | None = None) -> None:
    """One flag per option field of `cls` (only those named in `only`, when given)."""
    wanted = set(only) if only is not None else None
    for f in option_fields(cls):
        if wanted is not None and f.name not in wanted:
            continue
        help_text = f.metadata["help"].replace("%(default)s", _shown(f))
        kwargs = dict(f.metadata["argparse"])
        if "choices" not in kwargs and kwargs.get("action") not in ("store_true", "store_false"):
            kwargs.setdefault("metavar", f.metadata["flag"].lstrip("-").upper().replace("-", "_"))
        parser.add_argument(f.metadata["flag"], dest=f.name, default=argparse.SUPPRESS,
                            help=help_text, **kwargs)


def from_args(cls: type, args: argparse.Namespace) -> Any:
    """`cls` from parsed arguments: given flags (parsed), else the fields' defaults."""
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("group"):
            kwargs[f.name] = from_args(hints[f.name], args)
        elif f.metadata.get("flag") and hasattr(args, f.name):
            value = getattr(args, f.name)
            parse = f.metadata.get("parse")
            kwargs[f.name] = _coerce(hints[f.name], parse(value) if parse else value)
    return cls(**kwargs)


# --- JSON round trip (gpu_loop processes, the worker's request file) ------------------------
def to_dict(obj: Any) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v
    return plain(obj)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    if not isinstance(data, dict):
        raise SearchError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SearchError(f"{cls.__name__}: unknown option(s) {unknown}")
    hints = _hints(cls)
    return cls(**{k: _coerce(hints[k], v) for k, v in data.items()})


def to_json(obj: Any) -> str:
    return json.dumps(to_dict(obj), indent=1)


def from_json(cls: type, text: str) -> Any:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SearchError(f"{cls.__name__}: not valid JSON ({exc})") from None
    return from_dict(cls, data)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(hint: Any, value: Any) -> Any:
    """JSON/argparse values -> the field's type: nested groups, tuples, paths."""
    if value is None:
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        hint = args[0]
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value)
    if typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if hint is Path:
        return Path(value)
    return value


def check_finite(options: Any) -> None:
    """Every float option of `options` (not its nested groups) is a finite number: nan and inf mean nothing here."""
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise SearchError(f"{f.metadata.get('flag') or f.name} {value}: need a finite number")


# --- parsers of flag values ----------------------------------------------------------------
def parse_models(text: str) -> tuple[str, ...]:
    """"both" (the two WeNet models) or one workload name (checked once --workload files are loaded)."""
    if text == "both":
        return tuple(MODELS)
    return (text,)


def resolve_workloads(refs: Iterable[str]) -> tuple[str, ...]:
    """--workload values (spec files, or shipped names) -> their model names, each registered."""
    try:
        return tuple(dict.fromkeys(registry.resolve(r).name for r in refs))
    except WorkloadError as exc:
        raise SearchError(str(exc)) from None


def grid_max_batch(grid: str | None, models: Iterable[str] = ()) -> int:
    """The engine's max batch for a grid: the workload's batch.max (WeNet: the judged grid's 16), or
    more when the grid has larger batches; over several models, the largest."""
    return max(max([registry.get(m).batch.max if models else MAX_BATCH] + [b for b, _ in parse_grid(grid, m)])
               for m in (list(models) or [None]))


# --- the groups ----------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyOptions:
    """Where the studies are (tune and every verb that reads them)."""
    work_dir: str = opt(DEFAULT_WORK, "--work-dir", "work directory (default: %(default)s)")
    storage: str | None = opt(None, "--storage", "SQLAlchemy URL of the study database "
                              "(default: sqlite:///WORK_DIR/study.db)")
    models: tuple[str, ...] = opt(tuple(MODELS), "--model", "encoder, decoder or both (default: both; "
                                  "with --workload: its model)", parse=parse_models)
    study_name: str | None = opt(None, "--study-name", "a study other than wenet-<model>-<harness> "
                                 "(needs a single --model)")
    workloads: tuple[str, ...] = opt((), "--workload", "workload spec YAML of an ONNX model of your own, or a "
                                     "shipped spec's name (wenet-encoder); repeatable; its model is tuned",
                                     action="append")

    def __post_init__(self) -> None:
        if self.storage is None:
            object.__setattr__(self, "storage", default_storage_url(self.work_dir))
        parse_url(self.storage)
        if self.workloads:
            named = resolve_workloads(self.workloads)
            if self.models != tuple(MODELS) and set(self.models) != set(named):
                raise SearchError(f"--model {','.join(self.models)} and --workload ({', '.join(named)}) "
                                  "name different models; give one of them")
            object.__setattr__(self, "models", named)
        bad = [m for m in self.models if not registry.known(m)]
        if bad or not self.models:
            raise SearchError(f"unknown model {bad[0] if bad else ''!r}; expected encoder, decoder or both, "
                              "or a spec of your own with --workload PATH")
        if self.study_name and len(self.models) > 1:
            raise SearchError("--study-name needs a single --model (each model has its own study)")


@dataclass(frozen=True)
class TrialOptions:
    """What every trial of a run shares; the trial worker receives it in its request file."""
    harness: str = opt(DEFAULT_HARNESS, "--harness", "how engines are run and timed: contest (the organisers' "
                       "loop, profile 0) or serving (profile per shape, CUDA graphs) (default: %(default)s)",
                       choices=HARNESS_NAMES)
    grid: str = opt("all", "--grid", "test shapes to score: all (the judged grid, default), stress "
                    "(batch 64), full (both) or e.g. 1x16,16x256")
    runs: int | None = opt(None, "--runs", "timed runs per test case (default: the harness's)", type=int)
    warmup: int | None = opt(None, "--warmup", "warm-up runs per test case (default: the harness's)", type=int)
    trial_timeout_s: float | None = opt(1800.0, "--trial-timeout", "seconds before a trial's worker is "
                                        "killed (default: %(default)s)", type=float)
    plugin_libs: tuple[str, ...] = opt((), "--plugin-lib", "plugin library for every trial (repeatable)",
                                       action="append")
    keep_plans: bool = opt(False, "--keep-plans", "keep every trial's engine (large)", action="store_true")
    plan_cache_gib: float = opt(20.0, "--plan-cache-gib", "size cap of the engine cache WORK_DIR/plans (built "
                                "plans re-used by equal builds; least recently used out first); 0: off "
                                "(default: %(default)s)", type=float)
    pruner: str = opt("median", "--pruner", "stop a trial whose partial objective is worse than the median "
                      "(or --prune-percentile) of the complete trials at the same case, or already worse than "
                      "the best; none: never prune (default: %(default)s)",
                      choices=("none", "median", "percentile"))
    prune_percentile: float = opt(25.0, "--prune-percentile", "for --pruner percentile: keep trials within this "
                                  "percentile (default: %(default)s)", type=float)
    prune_startup_trials: int = opt(5, "--prune-startup-trials", "complete trials before the median/percentile "
                                    "rule prunes (default: %(default)s)", type=int)
    prune_bad_ratio: float = opt(3.0, "--prune-bad-ratio", "prune at once when a case's worst error exceeds "
                                 "this many times its threshold; 0: off (default: %(default)s)", type=float)

    def validate(self, models: Iterable[str] = ()) -> None:
        """`models`: the workloads whose grids --grid must fit (default: the WeNet grid)."""
        check_finite(self)
        if self.harness not in HARNESSES:
            raise SearchError(f"--harness {self.harness!r} is not one of {', '.join(HARNESS_NAMES)}")
        for model in list(models) or [None]:
            parse_grid(self.grid, model)
        if self.runs is not None and self.runs < 1:
            raise SearchError(f"--runs {self.runs}: need at least 1")
        if self.warmup is not None and self.warmup < 0:
            raise SearchError(f"--warmup {self.warmup}: need 0 or more")
        if self.trial_timeout_s is not None and self.trial_timeout_s <= 0:
            raise SearchError(f"--trial-timeout {self.trial_timeout_s:g}: need a positive number of seconds")
        if self.plan_cache_gib < 0:
            raise SearchError(f"--plan-cache-gib {self.plan_cache_gib:g}: need 0 (off) or more")
        if not 0 < self.prune_percentile < 100:
            raise SearchError(f"--prune-percentile {self.prune_percentile:g}: need a number between 0 and 100")
        if self.prune_startup_trials < 0:
            raise SearchError(f"--prune-startup-trials {self.prune_startup_trials}: need 0 or more")
        if self.prune_bad_ratio != 0 and self.prune_bad_ratio <= 1:
            raise SearchError(f"--prune-bad-ratio {self.prune_bad_ratio:g}: need more than 1 (a Good case is "
                              f"within 1x its threshold) or 0 (off)")
        preflight.check_plugin_libraries(self.plugin_libs)


@dataclass(frozen=True)
class SpaceOptions:
    """What shapes the search space. harness and max_batch come from the run's TrialOptions."""
    allow_int8: bool = opt(False, "--allow-int8", "add the INT8 flag and per-group int8 choices "
                           "(needs calibration data)", action="store_true")
    max_opt_level: int = opt(5, "--max-opt-level", "cap the builder optimization level for cheap "
                             "exploration (default: %(default)s)", type=int)
    group_granularity: str = opt("kind", "--group-granularity", "per-layer precision per sublayer kind "
                                 "(default) or per block and kind", choices=GRANULARITIES)
    num_blocks: int | None = opt(None, "--num-blocks", "blocks for --group-granularity block "
                                 "(default: counted in the ONNX)", type=int)
    precision_groups: tuple[str, ...] | None = opt(None, "--precision-groups", "only these layer groups get a "
                                                   "precision dimension, the others left to TensorRT (default: "
                                                   "every group; `search sensitivity` suggests a set)",
                                                   parse=parse_names)
    tactic_sources: tuple[str, ...] = TACTIC_SOURCES   # the ones the custom-subset dims may pick
    harness: str = DEFAULT_HARNESS       # the contest harness runs profile 0 only: single layout
    max_batch: int | None = None         # the engines' batch range (BuildConfig.max_batch); None: the workload's


@dataclass
class TuneOptions:
    """`python -m search tune`."""
    study: StudyOptions = group(StudyOptions)
    n_trials: int | None = opt(None, "--trials", "new trials per model (split across the GPUs)", type=int)
    time_budget_s: float | None = opt(None, "--time-budget", "seconds for all models; no trial starts after "
                                      "it (a running one finishes)", type=float)
    gpus: tuple[str, ...] = opt(("0",), "--gpus", "GPU ids, one tuning process each (default: 0), e.g. 0,1",
                                parse=parse_gpus)
    workers_per_gpu: int = opt(1, "--workers-per-gpu", "tuning processes per GPU (default 1): their engine "
                               "builds overlap, each measurement has the GPU alone (search/gpu_share.py)", type=int)
    onnx_dir: str | None = opt(None, "--onnx-dir", "where <model>.onnx are (default: the workload spec's "
                               "onnx; WORK_DIR/onnx for WeNet)")
    data_dir: str | None = opt(None, "--data", "test data directory (default: the workload spec's "
                               "cases.folder; WORK_DIR/data for WeNet)")
    seed: int | None = opt(None, "--seed", "sampler seed (GPU k's process uses seed+k)", type=int)
    sampler: str = opt("tpe", "--sampler", "tpe (default) or random, the baseline to compare TPE with; "
                       "one sampler per study (give a random one its own --study-name)",
                       choices=("tpe", "random"))
    seeds: tuple[str, ...] | None = opt(None, "--seeds", "the known configs a new study enqueues first: all "
                                        "(default), none, or labels such as baseline,per_batch_tf32 "
                                        "(an unknown one is an error that lists the harness's)",
                                        parse=parse_seed_labels)
    worker_command: tuple[str, ...] | None = opt(None, "--worker-command", "command line standing in for "
                                                 "`python -m search.worker` (tests: the fake worker)",
                                                 parse=parse_command)
    progress: bool = opt(True, "--no-progress", "no progress bar, one line per trial", action="store_false")
    trial: TrialOptions = group(TrialOptions)
    space: SpaceOptions = group(SpaceOptions)

    def __post_init__(self) -> None:
        work = Path(self.study.work_dir)
        self.onnx_dir = self.onnx_dir or str(work / "onnx")
        self.data_dir = self.data_dir or str(work / "data")
        # One source for what the space must agree on with the trials.
        self.space = dataclasses.replace(self.space, harness=self.trial.harness,
                                         max_batch=grid_max_batch(self.trial.grid, self.study.models))

    def to_json(self) -> str:
        return to_json(self)

    @classmethod
    def from_json(cls, text: str) -> "TuneOptions":
        return from_json(cls, text)

    def validate(self) -> None:
        """Every option, then what every trial would fail on (search/preflight.py); nothing is written."""
        check_finite(self)
        if self.n_trials is None and self.time_budget_s is None:
            raise SearchError("say how long to tune: --trials N and/or --time-budget SECONDS")
        if self.n_trials is not None and self.n_trials < 1:
            raise SearchError(f"--trials {self.n_trials}: need at least 1")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise SearchError(f"--time-budget {self.time_budget_s:g}: need a positive number of seconds")
        if not self.gpus:
            raise SearchError("--gpus names no GPU")
        if self.workers_per_gpu < 1:
            raise SearchError(f"--workers-per-gpu {self.workers_per_gpu}: need at least 1")
        if not 0 <= self.space.max_opt_level <= 5:
            raise SearchError(f"--max-opt-level {self.space.max_opt_level} is outside 0..5")
        if self.seed is not None and not 0 <= self.seed <= SEED_MAX - len(self.gpus) + 1:
            raise SearchError(f"--seed {self.seed}: need 0..{SEED_MAX - len(self.gpus) + 1} (GPU k's process uses seed+k)")
        self.trial.validate(self.study.models)
        preflight.check_run(self)

    def _default(self, given: str | None, sub: str) -> bool:
        return given is None or Path(given) == Path(self.study.work_dir) / sub

    def onnx_path(self, model: str) -> Path:
        """--onnx-dir/<model>.onnx when given, else the workload spec's onnx."""
        if self._default(self.onnx_dir, "onnx"):
            return registry.get(model).onnx_path(self.study.work_dir)
        return Path(self.onnx_dir) / f"{model}.onnx"

    def data_path(self, model: str) -> Path:
        """--data when given, else the workload spec's cases folder."""
        if self._default(self.data_dir, "data"):
            return registry.get(model).cases_dir(self.study.work_dir)
        return Path(self.data_dir)
