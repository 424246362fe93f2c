"""The two ways an engine is run and timed, named everywhere (evaluate.py, the study, result files).

- contest: the organisers' final harness (hackathon/testEncoderAndDecoder.py): one
  execution context on optimization profile 0, synchronous runs (execute_v2's
  equivalent: enqueue then wait), 10 warm-ups, then 30 runs timed as a whole with
  time_ns; the mean. It judges batch <= 16 only (workload.shapes.GRID).
- serving: the project's runtime: for each shape the profile that holds it (padding up
  to a bucket where the layout has buckets), a CUDA graph replayed where the engine
  is capturable (plain enqueue where not, recorded), CUDA-event timing, the median
  of 30 runs after 10 warm-ups.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.errors import InputError

TIMINGS = ("contest", "robust")


@dataclass(frozen=True)
class Harness:
    name: str
    select_profiles: bool           # False: profile 0 only, no padding
    cuda_graphs: bool               # capture one graph per (profile, shape) and replay it
    timing: str                     # "contest": time_ns mean of synchronous runs; "robust": CUDA-event median
    warmup: int = 10
    runs: int = 30

    def loops(self, warmup: int | None = None, runs: int | None = None) -> tuple[int, int]:
        """(warm-up, timed runs): explicit values win over the harness's."""
        w = self.warmup if warmup is None else warmup
        r = self.runs if runs is None else runs
        if isinstance(w, bool) or isinstance(r, bool) or not isinstance(w, int) or not isinstance(r, int) \
                or w < 0 or r < 1:
            raise InputError(f"warmup {w!r} must be an integer >= 0 and runs {r!r} an integer >= 1")
        return w, r

    def with_options(self, cuda_graphs: bool | None = None) -> "Harness":
        """A variant (e.g. serving without CUDA graphs, for the layouts table)."""
        if cuda_graphs is None or cuda_graphs == self.cuda_graphs:
            return self
        return dataclasses.replace(self, cuda_graphs=cuda_graphs)

    @property
    def label(self) -> str:
        graphs = "" if not self.select_profiles or self.cuda_graphs else "-nographs"
        return self.name + graphs


HARNESSES = {
    "contest": Harness("contest", select_profiles=False, cuda_graphs=False, timing="contest"),
    "serving": Harness("serving", select_profiles=True, cuda_graphs=True, timing="robust"),
}
DEFAULT_HARNESS = "serving"


def get_harness(name: str) -> Harness:
    """The harness called `name`; InputError (one line) naming the known ones."""
    if name not in HARNESSES:
        raise InputError(f"harness {name!r} is not one of {', '.join(HARNESSES)}")
    return HARNESSES[name]
