"""The workload package's exceptions: each carries one line that a CLI prints as `error: ...`."""
from __future__ import annotations


class WorkloadError(Exception):
    """Bad input to the workload package (config, checkpoint, grid, device)."""


class CheckpointError(WorkloadError):
    """A checkpoint that does not fit the model: missing, unreadable, wrong keys or shapes."""
