"""The seam between engine/ and TensorRT: the few things build, run, inspect and probe need.

    backend = get_backend()                 # engine.trt_backend.TrtBackend unless a test set another
    out = backend.build(job, report)        # BuildJob -> plan bytes (+ timing cache bytes)
    engine = backend.load(plan_bytes, path) # I/O tensors, profiles, a context per profile
    info = backend.inspect(plan_bytes, path)

The interface and its data: engine/backend_types.py. Tests inject a double with
`set_backend` (tests/engine/fake_backend.py).
"""
from __future__ import annotations

from engine.backend_types import (Backend, BuildJob, BuildOutput, CalibrationJob, Context, Device, Engine,
                                  Profile, TensorInfo)

__all__ = ["Backend", "BuildJob", "BuildOutput", "CalibrationJob", "Context", "Device", "Engine", "Profile",
           "TensorInfo", "get_backend", "set_backend"]

_BACKEND: Backend | None = None


def get_backend() -> Backend:
    """The backend of this process: TensorRT (imported lazily, at first use) unless `set_backend` chose one."""
    global _BACKEND
    if _BACKEND is None:
        from engine.trt_backend import TrtBackend
        _BACKEND = TrtBackend()
    return _BACKEND


def set_backend(backend: Backend | None) -> Backend | None:
    """Use `backend` from now on (None: back to TensorRT); returns the previous one."""
    global _BACKEND
    previous, _BACKEND = _BACKEND, backend
    return previous
