"""The models the pass and plugin tests run on.

Two independent exports of the same architecture are used where available:
- "workload": the project's tiny WeNet export (tests/conftest.py fixtures
  `tiny_onnx` / `tiny_onnx_modern`, feeds from workload.data.make_inputs);
- "mini": tests/candidates/mini_wenet.py, written separately from WeNet's sources,
  so every pass is also checked on a re-export it was not developed against.
Each in "contest" style (opset 13, decomposed LayerNorm) and "modern" style
(opset 17, LayerNormalization).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pytest

STYLES = ("contest", "modern")
HERE = Path(__file__).resolve().parent


@dataclass
class Workload:
    source: str
    paths: dict[tuple[str, str], Path]           # (style, model) -> onnx path
    make_inputs: Callable[[str, int, int, int], dict[str, np.ndarray]]
    # (batch, frames) pairs to compare at: a single row and a padded batch
    shapes: tuple[tuple[int, int], ...]

    def load(self, style: str, model: str) -> onnx.ModelProto:
        return onnx.load(str(self.paths[(style, model)]))


def _mini(tmp: Path) -> Workload:
    import sys
    sys.path.insert(0, str(HERE))
    mini = importlib.import_module("mini_wenet")
    paths = {}
    for style, opset in (("contest", 13), ("modern", 17)):
        for model in ("encoder", "decoder"):
            paths[(style, model)] = mini.export(model, tmp / f"mini-{model}-{style}.onnx", opset=opset)
    return Workload("mini", paths, mini.make_inputs, ((1, 30), (3, 47)))


def _workload(request) -> Workload | None:
    try:
        contest = request.getfixturevalue("tiny_onnx")
        modern = request.getfixturevalue("tiny_onnx_modern")
        data = importlib.import_module("workload.data")
    except (pytest.FixtureLookupError, ImportError):
        return None
    config = None
    try:
        config = request.getfixturevalue("tiny_config")
    except pytest.FixtureLookupError:
        pass

    def make_inputs(model, batch, frames, seed):
        return data.make_inputs(model, batch, frames, seed, config=config)

    paths = {("contest", m): Path(p) for m, p in contest.items()}
    paths.update({("modern", m): Path(p) for m, p in modern.items()})
    return Workload("workload", paths, make_inputs, ((1, 64), (3, 97)))


def collect_workloads(request, tmp: Path) -> list[Workload]:
    """The project's tiny export when its fixtures exist, and always the mini re-export."""
    out = []
    wl = _workload(request)
    if wl is not None:
        out.append(wl)
    out.append(_mini(tmp))
    return out
