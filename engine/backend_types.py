"""What flows through the seam between engine/ and TensorRT (engine/backend.py): plain data and
typing.Protocol, no TensorRT. What to ask for is
decided above the seam (engine/settings.py: flags, tactic sources, knobs ignored and
why; engine/precision.py: per-layer precision; engine/profiles.py: profiles); the
backend applies it with its own API and reports what it refused in the BuildReport.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from engine.build_report import BuildReport
from engine.log_sink import LogSink
from engine.precision import LayerDesc, PrecisionPlan
from engine.settings import BuilderSettings, Capabilities

Profile = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]   # input -> (min, opt, max)


@dataclass(frozen=True)
class CalibrationJob:
    """INT8 calibration: the npz batches (loaded once the network's input dtypes are known) and the cache file."""
    algorithm: str                        # "entropy2" | "minmax"
    data: Path
    cache: Path

    def load(self, input_dtypes: dict[str, Any]):
        from engine.calibrator import CalibrationSet
        return CalibrationSet.from_npz(self.data, input_dtypes)

    def describe(self, data) -> dict[str, Any]:
        return {"algorithm": self.algorithm, "data": str(self.data), "batches": len(data),
                "shapes": {k: list(v) for k, v in data.shapes.items()}, "cache": str(self.cache)}


@dataclass
class BuildJob:
    """One build, fully decided: the backend only applies it."""
    onnx_path: Path
    model: str
    settings: BuilderSettings
    profiles: list[Profile]                                   # in index order
    precision_plan: Callable[[list[LayerDesc]], PrecisionPlan] | None = None   # the network's layers -> pins
    calibration: CalibrationJob | None = None
    timing_cache: bytes | None = None                         # None: no timing cache; b"": start an empty one
    tracker: Any = None                                       # engine.build_progress.PhaseTracker, or None


@dataclass
class BuildOutput:
    plan: bytes
    timing_cache: bytes | None = None                         # the cache after the build, serialized


@dataclass(frozen=True)
class TensorInfo:
    """One I/O tensor of an engine."""
    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]                                    # -1 for dynamic axes


class Context(Protocol):
    """One execution context, already on its optimization profile."""

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool: ...

    def output_shape(self, name: str) -> tuple[int, ...]: ...

    def set_address(self, name: str, ptr: int) -> None: ...

    def execute(self, stream: Any) -> bool: ...              # enqueue on `stream` (may be capturing)

    def set_profiler(self, report: Callable[[str, float], None] | None) -> None: ...   # per-layer ms


class Engine(Protocol):
    tensors: list[TensorInfo]
    profiles: list[Profile]

    def create_context(self, profile: int, stream: Any) -> Context: ...   # PlanError when refused

    def close(self) -> None: ...


class Device(Protocol):
    """Device memory, streams, events and CUDA graphs (engine.cuda_runtime.CudaApi is the real one)."""

    def malloc(self, nbytes: int) -> int: ...
    def free(self, ptr: int) -> None: ...
    def memcpy_htod_async(self, dst: int, host_ptr: int, nbytes: int, stream: Any) -> None: ...
    def memcpy_dtoh_async(self, host_ptr: int, src: int, nbytes: int, stream: Any) -> None: ...
    def stream_create(self) -> Any: ...
    def stream_sync(self, stream: Any) -> None: ...
    def stream_destroy(self, stream: Any) -> None: ...
    def event_create(self) -> Any: ...
    def event_record(self, event: Any, stream: Any) -> None: ...
    def event_sync(self, event: Any) -> None: ...
    def event_elapsed_ms(self, start: Any, end: Any) -> float: ...
    def event_destroy(self, event: Any) -> None: ...
    def begin_capture(self, stream: Any) -> None: ...
    def end_capture(self, stream: Any) -> Any: ...
    def graph_instantiate(self, graph: Any) -> Any: ...
    def graph_launch(self, graph_exec: Any, stream: Any) -> None: ...
    def graph_destroy(self, graph: Any) -> None: ...
    def graph_exec_destroy(self, graph_exec: Any) -> None: ...
    def clear_capture_error(self, stream: Any) -> None: ...
    def self_test(self) -> str: ...                           # the probe's check of error reporting


class Backend(Protocol):
    sink: LogSink                                             # the backend's messages (build log, last errors)

    def version(self) -> str: ...                             # "8.6.0"; TensorRTMissing when absent
    def capabilities(self) -> Capabilities: ...
    def device(self) -> Device: ...
    def gpu_name(self) -> str: ...                            # "unknown GPU" when unreadable
    def environment(self) -> dict[str, Any]: ...              # versions of the stack, for the probe
    def load_plugins(self, libs: Sequence[str | Path]) -> str | None: ...   # libraries + built-ins; a note
    def plugin_creators(self) -> list[tuple[str, str]]: ...  # (name, version) in the plugin registry
    def build(self, job: BuildJob, report: BuildReport) -> BuildOutput: ...   # BuildError (one line)
    def merge_timing_caches(self, ours: bytes, theirs: bytes) -> bytes | None: ...
    def load(self, plan: bytes, path: str | Path) -> Engine: ...            # PlanError (one line)
    def inspect(self, plan: bytes, path: str | Path) -> dict[str, Any]: ...  # the inspector's JSON, parsed
