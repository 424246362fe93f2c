"""The trial worker's one input: request.json in the trial directory, written by the runner.

    {"config": ".../config.yaml", "onnx": ..., "data": ..., "out": ..., "timing_cache": ...,
     "cache_dir": ..., "trial": {TrialOptions as JSON}, "workload": ".../my-model.yaml"}

The real worker (`python -m search.worker --request PATH`) and the CPU tests' fake
worker read it with `read_request`, so both see exactly what the run was given.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from workload import registry
from workload.errors import WorkloadError

from search.errors import SearchError
from search.options import TrialOptions, from_json, to_json

REQUEST_FILE = "request.json"
# The stage the worker is in, rewritten as it enters each: a crash by signal prints no
# `error: <stage>:` line, so the runner reads the stage from here.
STAGE_FILE = "stage.txt"


def write_stage(out: Path, stage: str) -> None:
    """Record the stage the worker is about to run, for the runner when a signal kills it inside."""
    try:
        (Path(out) / STAGE_FILE).write_text(stage + "\n")
    except OSError:
        pass                        # only the reason of a crash gets less precise


def read_stage(out: Path) -> str:
    """The stage the worker last entered ("" when it wrote none)."""
    try:
        return (Path(out) / STAGE_FILE).read_text().strip()
    except OSError:
        return ""


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
