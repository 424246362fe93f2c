"""Per-layer times of one engine at one input shape, from TensorRT's IProfiler.

    times = layer_times(runner, feeds, runs=10)      # {layer name: mean ms per run}

Nsight Systems cannot make reports on the GPU host; the IProfiler can. With Myelin a
whole subgraph is one layer ("{ForeignNode[...]}"), so a dominant foreign node says
the time is inside Myelin; the runner's host enqueue time says whether it is host-bound.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping


def layer_times(runner, feeds: Mapping[str, Any], runs: int = 10) -> dict[str, float]:
    """Mean ms per layer over `runs` plain enqueues (no CUDA graph: the profiler needs enqueues)."""
    totals: dict[str, float] = defaultdict(float)

    def add(layer_name: str, ms: float) -> None:
        totals[layer_name] += ms

    # The runner's own preparation (profile choice, padding, buffers): same path as its timings.
    slot, _ = runner._prepare(feeds)
    slot.context.set_profiler(add)
    try:
        for _ in range(runs):
            runner._enqueue(slot)
            runner.cuda.stream_sync(runner.stream)
    finally:
        slot.context.set_profiler(None)       # later enqueues of this context run unprofiled (fast) again
    return {name: ms / runs for name, ms in sorted(totals.items(), key=lambda kv: -kv[1])}
