"""Pure checks of what a runner is fed, and the choice of optimization profile (CPU-testable).

engine/runtime.py uses them; they need no TensorRT.
"""
from __future__ import annotations

import statistics
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from engine.errors import InputError

Shapes = Mapping[str, tuple[int, ...]]
ProfileShapes = Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]   # name -> min, opt, max


def check_feed_names(expected: Sequence[str], given: Iterable[str]) -> None:
    """InputError naming the expected inputs when a feed is missing or unexpected."""
    given = list(given)
    missing = [n for n in expected if n not in given]
    extra = [n for n in given if n not in expected]
    if missing or extra:
        what = []
        if missing:
            what.append(f"missing {missing}")
        if extra:
            what.append(f"unexpected {extra}")
        raise InputError(f"feeds do not match the engine's inputs: {'; '.join(what)}; "
                         f"expected exactly {list(expected)}")


def cast_feed(name: str, value: Any, dtype: np.dtype) -> np.ndarray:
    """`value` as a C-contiguous array of the engine's dtype; InputError where the cast would lose meaning."""
    arr = np.asarray(value)
    dtype = np.dtype(dtype)
    if arr.dtype == dtype:
        return np.ascontiguousarray(arr)
    src, dst = arr.dtype.kind, dtype.kind
    if src == "f" and dst in "iub":
        raise InputError(f"input {name}: {arr.dtype} data for a {dtype} engine input (refusing to truncate floats)")
    if src in "iu" and dst in "iu" and arr.size:
        info = np.iinfo(dtype)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < info.min or hi > info.max:
            raise InputError(f"input {name}: values {lo}..{hi} do not fit the engine's {dtype}")
    if src not in "biuf" or dst not in "biuf":
        raise InputError(f"input {name}: cannot cast {arr.dtype} to the engine's {dtype}")
    return np.ascontiguousarray(arr.astype(dtype))


def check_rank(name: str, shape: Sequence[int], engine_shape: Sequence[int], paddable: set[int] = frozenset()) -> None:
    """InputError when a feed's rank or a fixed dimension differs from the engine's tensor shape (-1 = dynamic).
    A smaller dimension on a `paddable` axis fits: the runtime pads it up (every profile fixed at batch 4)."""
    shape, engine_shape = list(shape), list(engine_shape)
    if len(shape) != len(engine_shape):
        raise InputError(f"input {name}: shape {shape} has rank {len(shape)}, the engine expects "
                         f"rank {len(engine_shape)} {engine_shape}")
    for axis, (got, want) in enumerate(zip(shape, engine_shape)):
        if want >= 0 and got != want and not (axis in paddable and got < want):
            raise InputError(f"input {name}: shape {shape} does not fit the engine's {engine_shape}")


def summarize_ms(samples: Sequence[float], timing: str) -> float:
    """robust: the median of per-run times; contest: the mean."""
    if not samples:
        raise InputError("no timing samples")
    return float(statistics.median(samples)) if timing == "robust" else float(statistics.fmean(samples))


def _fits(shape: Sequence[int], lo: Sequence[int], hi: Sequence[int]) -> bool:
    return len(shape) == len(lo) and all(a <= s <= b for a, s, b in zip(lo, shape, hi))


def choose_profile(profiles: Sequence[ProfileShapes], shapes: Shapes, pad=None,
                   allowed: Sequence[int] | None = None) -> tuple[int, dict[str, tuple[int, ...]]] | None:
    """(profile index, the input shapes to run it at) for these input shapes, or None.

    Without `pad` (a workload.padding.PadSpec) only a profile that holds the shapes as they
    are qualifies. With it, a profile may also pad batch and frames axes up to its minimum
    (a static bucket's size). Ranking: a profile whose batch is fixed before one whose batch
    is dynamic (the dynamic batch dimension is what costs TensorRT 8.6 its floor), then the
    fewest padded elements, then the tightest profile.
    """
    best = None
    for index in (range(len(profiles)) if allowed is None else allowed):
        prof = profiles[index]
        if set(prof) != set(shapes):
            continue
        target, ok = {}, True
        for name, shape in shapes.items():
            lo, _, hi = prof[name]
            want = list(shape)
            axes = pad.paddable_axes(name) if pad is not None else set()
            for axis, dim in enumerate(shape):
                if axis < len(lo) and dim < lo[axis] and axis in axes:
                    want[axis] = lo[axis]
            if not _fits(want, lo, hi):
                ok = False
                break
            target[name] = tuple(want)
        if not ok:
            continue
        dynamic_batch = pad is not None and any(
            prof[n][0][a] != prof[n][2][a] for n, a in pad.batch_axes.items() if n in prof)
        padded = sum(int(np.prod(target[n], dtype=np.int64)) - int(np.prod(shapes[n], dtype=np.int64))
                     for n in shapes)
        volume = sum(int(np.prod(prof[n][2], dtype=np.int64)) for n in shapes)
        key = (dynamic_batch, padded, volume, index)
        if best is None or key < best[0]:
            best = (key, index, target)
    return None if best is None else (best[1], best[2])
