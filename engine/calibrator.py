"""INT8 calibration from a calibration-<model>.npz (workload.data layout: `<input>__<i>` keys).

`CalibrationSet` (numpy only, CPU-testable) loads and checks the batches against
the network's inputs; `make_calibrator` wraps it in TensorRT's
IInt8EntropyCalibrator2 or IInt8MinMaxCalibrator (defined lazily: the base class
comes from the tensorrt module). Every batch must have one shape per input: the
builder calibrates with a calibration profile whose min = opt = max = that shape
(TensorRT calibrates dynamic-shape networks at the calibration profile's opt dims).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engine.errors import CalibrationError, InputError, first_line
from engine.feeds import cast_feed
from engine.settings import CALIBRATOR_CLASSES

log = logging.getLogger("engine")


class CalibrationSet:
    """The calibration batches, cast to the network's input dtypes; all batches share one shape per input."""

    def __init__(self, batches: list[dict[str, np.ndarray]], input_dtypes: Mapping[str, Any], source: str = "") -> None:
        self.source = source or "calibration data"
        if not batches:
            raise CalibrationError(f"{self.source} holds no batch")
        names = set(input_dtypes)
        shapes: dict[str, tuple[int, ...]] = {}
        self.batches: list[dict[str, np.ndarray]] = []
        for i, batch in enumerate(batches):
            missing = sorted(names - set(batch))
            if missing:
                raise CalibrationError(f"{self.source}: batch {i} lacks input(s) {missing}; "
                                       f"the network's inputs are {sorted(names)}")
            cast = {}
            for name in sorted(names):
                try:
                    arr = cast_feed(name, batch[name], np.dtype(input_dtypes[name]))
                except InputError as exc:
                    raise CalibrationError(f"{self.source}: batch {i}: {exc}") from None
                if name in shapes and arr.shape != shapes[name]:
                    raise CalibrationError(f"{self.source}: input {name} has shape {list(arr.shape)} in batch {i} "
                                           f"but {list(shapes[name])} before; every batch needs one shape")
                shapes[name] = arr.shape
                cast[name] = arr
            self.batches.append(cast)
        self.shapes = shapes
        self.nbytes = {n: max(b[n].nbytes for b in self.batches) for n in names}

    @classmethod
    def from_npz(cls, path: str | Path, input_dtypes: Mapping[str, Any]) -> "CalibrationSet":
        from workload.data import load_calibration
        from workload.errors import WorkloadError

        path = check_calibration_file(path)
        try:
            batches = load_calibration(path)
        except (WorkloadError, OSError, ValueError) as exc:
            raise CalibrationError(f"calibration file {path}: {first_line(exc)}") from None
        return cls(batches, input_dtypes, str(path))

    def __len__(self) -> int:
        return len(self.batches)


def check_calibration_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist (write it with `python -m workload data`)")
    return path


def calibration_cache_name(onnx_path: Path, algorithm: str, data_path: Path) -> Path:
    """Cache beside the (prepared) ONNX, keyed by the graph's content, the algorithm and the data file:
    a stale cache gives wrong scales (a re-export with new weights keeps the file name)."""
    import hashlib

    from engine.prepare import file_sha256      # memoized: the ONNX is already hashed for its prepare key

    digest = hashlib.sha256(f"{file_sha256(onnx_path)}:{file_sha256(data_path)}".encode()).hexdigest()
    return onnx_path.with_name(f"{onnx_path.stem}.{algorithm}.{digest[:12]}.calib")


def make_calibrator(trt: Any, cuda: Any, data: CalibrationSet, algorithm: str = "entropy2",
                    cache_path: str | Path | None = None):
    """A TensorRT calibrator feeding `data` from device buffers; call `.free()` after the build."""
    cls_name = CALIBRATOR_CLASSES.get(algorithm)
    if cls_name is None:
        raise CalibrationError(f"unknown calibrator {algorithm!r}; known: {', '.join(CALIBRATOR_CLASSES)}")
    base = getattr(trt, cls_name, None)
    if base is None:
        raise CalibrationError(f"this TensorRT has no {cls_name}")
    cache = Path(cache_path) if cache_path is not None else None

    class NpzCalibrator(base):
        def __init__(self) -> None:
            base.__init__(self)              # pybind11 trampolines need the base __init__
            self.data = data
            self.index = 0
            self.cache_used = False
            self.stream = cuda.stream_create()
            self.ptrs = {n: cuda.malloc(nb) for n, nb in data.nbytes.items()}

        def get_batch_size(self) -> int:
            return 1                         # explicit-batch networks: the batch is in the shapes

        def get_batch(self, names, *unused):
            # Any exception here would be swallowed by TensorRT: log it and end calibration.
            try:
                if self.index >= len(self.data):
                    return None
                batch = self.data.batches[self.index]
                for name in names:
                    arr = batch[name]
                    cuda.memcpy_htod_async(self.ptrs[name], arr.ctypes.data, arr.nbytes, self.stream)
                cuda.stream_sync(self.stream)
                self.index += 1
                return [int(self.ptrs[n]) for n in names]
            except Exception as exc:
                log.error("calibrator get_batch failed: %s", first_line(exc))
                return None

        def read_calibration_cache(self):
            if cache is not None and cache.is_file() and cache.stat().st_size > 0:
                self.cache_used = True
                return cache.read_bytes()
            return None

        def write_calibration_cache(self, blob) -> None:
            if cache is None:
                return
            try:
                tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp")
                tmp.write_bytes(memoryview(blob).tobytes())
                os.replace(tmp, cache)
            except Exception as exc:
                log.warning("calibration cache %s not written: %s", cache, first_line(exc))

        def free(self) -> None:
            for name, ptr in list(self.ptrs.items()):
                try:
                    cuda.free(ptr)
                except Exception:
                    pass
                self.ptrs.pop(name, None)
            if self.stream is not None:
                try:
                    cuda.stream_destroy(self.stream)
                except Exception:
                    pass
                self.stream = None

    return NpzCalibrator()
