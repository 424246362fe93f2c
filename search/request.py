"""The trial worker's one input: request.json in the trial directory, written by the runner.

    {"config": ".../config.yaml", "onnx": ..., "data": ..., "out": ..., "timing_cache": ...,
     "cache_dir": ..., "trial": {TrialOptions as JSON}, "workload": ".../my-model.yaml"}

The real worker (`python -m search.worker --request PATH`) and the CPU tests' fake
worker read it with `read_request`, so both see exactly what the run was given.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from workload import registry
from workload.errors import WorkloadError

from search.errors import SearchError
from search.gpu_share import WAIT_STAGE
from search.options import TrialOptions, from_json, to_json

REQUEST_FILE = "request.json"
# The stages the worker entered, a line each (name, wall clock): a crash by signal prints no
# `error: <stage>:` line, so the runner reads the last stage from here, and a trial stopped before
# its result (pruned, failed) still has the seconds each stage took.
STAGE_FILE = "stage.txt"
# the worker stages whose seconds a trial records, under the user attrs a measured trial has too
STAGE_ATTRS = {"prepare": "prepare_s", "build": "build_s", "evaluate": "eval_s", WAIT_STAGE: "gpu_wait_s"}


def write_stage(out: Path, stage: str) -> None:
    """Record the stage the worker is about to run, and when."""
    try:
        with (Path(out) / STAGE_FILE).open("a") as f:
            f.write(f"{stage}\t{time.time():.3f}\n")
    except OSError:
        pass                        # only the reason of a crash and the stage times get less precise


def _stage_lines(out: Path) -> list[tuple[str, float | None]]:
    try:
        lines = (Path(out) / STAGE_FILE).read_text().splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        name, _, when = line.strip().partition("\t")
        try:
            entries.append((name, float(when)))
        except ValueError:
            entries.append((name, None))        # a line without its time: the name still counts
    return [e for e in entries if e[0]]


def read_stage(out: Path) -> str:
    """The stage the worker last entered ("" when it wrote none)."""
    entries = _stage_lines(out)
    return entries[-1][0] if entries else ""


def stage_seconds(out: Path, until: float | None = None) -> dict[str, float]:
    """Seconds in each stage the worker entered, up to the next one; the last runs to `until`
    (the wall clock now by default), so a killed worker's last stage counts to its end."""
    entries = _stage_lines(out)
    end = time.time() if until is None else until
    spent: dict[str, float] = {}
    for (name, start), (_, stop) in zip(entries, [*entries[1:], ("", end)]):
        if start is not None and stop is not None:      # max: the file's times are rounded to 1 ms
            spent[name] = spent.get(name, 0.0) + max(stop - start, 0.0)
    return spent


@dataclass
class TrialRequest:
    """Everything the worker needs: files, and the run's TrialOptions."""
    config: Path                       # the trial's BuildConfig YAML
    onnx: Path                         # the model as exported (passes are applied by the worker)
    data: Path                         # test data dir (work/data)
    out: Path                          # trial directory: request.json, result.json, logs, tables
    timing_cache: Path
    cache_dir: Path                    # prepared-ONNX cache, keyed by pass set
    trial: TrialOptions = field(default_factory=TrialOptions)
    workload: Path | None = None       # the workload spec YAML of the config's model (None: a shipped one)
    gpu_lock: Path | None = None       # the GPU's build/measure lock (search/gpu_share.py); None: none

    @property
    def path(self) -> Path:
        return Path(self.out) / REQUEST_FILE


def write_request(req: TrialRequest) -> Path:
    req.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = req.path.with_suffix(".json.tmp")
    tmp.write_text(to_json(req))
    tmp.replace(req.path)
    return req.path


def read_request(path: str | Path) -> TrialRequest:
    """The request, its workload spec registered (so its model is known to this process)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SearchError(f"cannot read trial request {path}: {exc.strerror or exc}") from None
    req = from_json(TrialRequest, text)
    if req.workload is not None:
        try:
            registry.resolve(req.workload)
        except WorkloadError as exc:
            raise SearchError(f"trial request {path}: {exc}") from None
    return req
