"""The engine package's exceptions: each carries one line that a CLI prints as `error: ...`."""
from __future__ import annotations

from workload.errors import OneLineError, first_line  # noqa: F401  (first_line: engine's callers import it here)


class EngineError(OneLineError):
    """Base of every engine/ error: a one-line message, no traceback needed to understand it."""


class TensorRTMissing(EngineError, ImportError):
    """`import tensorrt` failed: this Python has no TensorRT."""


class CudaError(EngineError):
    """A cuda-python runtime call returned an error code."""


class PrepareError(EngineError):
    """The source ONNX cannot be prepared (missing file, unreadable model)."""


class BuildError(EngineError):
    """The ONNX does not parse or TensorRT returned no engine, or the config asks for what this TensorRT lacks."""


class PlanError(EngineError):
    """An engine file that cannot be loaded (missing, empty, built by another TensorRT, missing plugins)."""


class InputError(EngineError, ValueError):
    """Feeds that do not fit the engine: wrong or missing names, ranks, dtypes, shapes outside the profile."""


class InferenceError(EngineError):
    """TensorRT refused to run the engine (execute_async_v3 returned False)."""


class CalibrationError(EngineError):
    """Calibration data that does not fit the network (missing inputs, differing batch shapes)."""

