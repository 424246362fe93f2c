"""Test cases of a workload made by a generator: random inputs, references from onnxruntime.

    python -m workload cases --workload my-model.yaml      # the spec's cases.folder, every grid shape

For every (batch, length) of the spec's grid: inputs drawn per the spec (`random:` of each
input; default N(0, 1) for floats, integers 0..9, random bools; `length` fills an integer
input with the case's length), then the ORIGINAL graph run in onnxruntime on CPU for the
reference outputs; written as `<name>-<batch>-<length>.npz` (inputs and outputs, the layout
evaluate.py reads), plus `calibration-<name>.npz` (`<input>__<i>` keys, workload.data's layout)
for INT8. Same spec and seed, same files. The WeNet specs use PyTorch references instead
(`python -m workload data`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from workload.errors import WorkloadError
from workload.spec import Workload


def parse_cases(text: str) -> tuple[tuple[int, int], ...]:
    """'1x8,4x32' -> ((1, 8), (4, 32)); WorkloadError naming a bad entry."""
    cases = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)x(\d+)\s*", part.lower())
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise WorkloadError(f"bad grid entry {part.strip()!r}; expected BATCHxLENGTH, e.g. 4x64")
        cases.append((int(m.group(1)), int(m.group(2))))
    return tuple(cases)


def random_feeds(spec: Workload, batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One case's inputs, by the spec's distributions."""
    feeds = {}
    for inp in spec.inputs:
        shape = tuple(d.value(batch, length) for d in inp.dims)
        kind, *args = inp.random or (("normal", 0.0, 1.0) if inp.dtype.startswith("float")
                                     else ("bool",) if inp.dtype == "bool" else ("integers", 0, 9))
        if kind == "normal":
            arr = rng.normal(args[0], args[1], shape)
        elif kind == "uniform":
            arr = rng.uniform(args[0], args[1], shape)
        elif kind == "integers":
            arr = rng.integers(args[0], args[1] + 1, shape)
        elif kind == "length":
            arr = np.full(shape, length)
        else:
            arr = rng.integers(0, 2, shape).astype(bool)
        feeds[inp.name] = np.ascontiguousarray(arr.astype(inp.dtype))
    return feeds


class Reference:
    """The original ONNX graph in onnxruntime (CPU): the reference every engine is compared with."""

    def __init__(self, spec: Workload, onnx_path: str | Path) -> None:
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise WorkloadError(f"{path} does not exist (the spec's onnx; export it first"
                                + (f": {spec.export_command()})" if spec.export else ")"))
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise WorkloadError(f"onnxruntime cannot load {path}: {str(exc).strip().splitlines()[0]}") from None
        have_in = [i.name for i in self.session.get_inputs()]
        have_out = [o.name for o in self.session.get_outputs()]
        if sorted(have_in) != sorted(spec.input_names):
            raise WorkloadError(f"{path} has inputs {have_in}; the spec names {list(spec.input_names)}")
        missing = [n for n in spec.output_names if n not in have_out]
        if missing:
            raise WorkloadError(f"{path} has no output(s) {missing}; its outputs are {have_out}")
        self.outputs = list(spec.output_names)

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def write_cases(spec: Workload, out_dir: str | Path, onnx_path: str | Path,
                grid: Iterable[tuple[int, int]] | None = None, seed: int | None = None,
                calibration: bool = True) -> list[Path]:
    """Write the test files of `grid` (default: the spec's full grid) and the calibration set; the paths."""
    seed = spec.cases.seed if seed is None else seed
    if seed < 0:
        raise WorkloadError(f"seed {seed} must be non-negative")
    grid = tuple(grid) if grid is not None else spec.grid.full
    for b, t in grid:
        if not (spec.batch.min <= b <= spec.max_batch_limit and spec.length.min <= t <= spec.length.max):
            raise WorkloadError(f"case {b}x{t} is outside batch {spec.batch.min}..{spec.max_batch_limit} x "
                                f"length {spec.length.min}..{spec.length.max}")
    ref = Reference(spec, onnx_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for b, t in grid:
        feeds = random_feeds(spec, b, t, np.random.default_rng([seed, b, t, 0]))
        path = out / f"{spec.name}-{b}-{t}.npz"
        _save(path, {**feeds, **ref(feeds)})
        written.append(path)
    if calibration:
        b, t = spec.cases.calibration_shape or max(spec.grid.judged, key=lambda bt: (bt[0] * bt[1], bt))
        arrays = {}
        for i in range(spec.cases.calibration_batches):
            feeds = random_feeds(spec, b, t, np.random.default_rng([seed, b, t, 1, i]))
            arrays.update({f"{k}__{i}": v for k, v in feeds.items()})
        path = out / f"calibration-{spec.name}.npz"
        _save(path, arrays)
        written.append(path)
    return written
