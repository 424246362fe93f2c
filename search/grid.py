"""Test-shape selections on the command line: all, stress, full or "1x16,4x64" (batch x length).

The named grids are the workload spec's (`grid`): all = the judged shapes, stress = the stress
batches, full = both. Without a model, the WeNet encoder's (the grid both WeNet specs share).
"""
from __future__ import annotations

from workload import registry
from workload.errors import WorkloadError
from workload.shapes import ALL_SHAPES, GRID, STRESS_GRID

from search.errors import SearchError

NAMED_GRIDS = {"all": GRID, "stress": STRESS_GRID, "full": ALL_SHAPES}   # the WeNet specs' grids
DEFAULT_MODEL = "encoder"


def shape_label(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def named_grids(model: str | None = None) -> dict[str, tuple[tuple[int, int], ...]]:
    """all / stress / full of a workload (default: the WeNet grids)."""
    try:
        grid = registry.get(model or DEFAULT_MODEL).grid
    except WorkloadError as exc:
        raise SearchError(str(exc)) from None
    return {"all": grid.judged, "stress": grid.stress, "full": grid.full}


def parse_shape(text: str, model: str | None = None) -> tuple[int, int]:
    try:
        b, t = text.lower().split("x")
        shape = (int(b), int(t))
    except ValueError:
        raise SearchError(f"shape {text!r} is not BATCHxLENGTH (e.g. 4x64)") from None
    full = named_grids(model)["full"]
    if shape not in full:
        raise SearchError(f"shape {text} is not a test shape; the shapes are {format_grid(full)}")
    return shape


def parse_grid(text: str | None, model: str | None = None) -> tuple[tuple[int, int], ...]:
    """None, "" or "all" -> the judged grid; "stress"; "full" -> both; else the listed shapes, in order."""
    key = "all" if text is None or not text.strip() else text.strip().lower()
    named = named_grids(model)
    if key in named:
        if not named[key]:
            raise SearchError(f"grid {key!r}: workload {model or DEFAULT_MODEL} has no {key} shapes")
        return named[key]
    shapes = tuple(parse_shape(part.strip(), model) for part in text.split(",") if part.strip())
    if not shapes:
        raise SearchError(f"grid {text!r} names no shape")
    if len(set(shapes)) != len(shapes):
        raise SearchError(f"grid {text!r} repeats a shape")
    return shapes


def format_grid(grid) -> str:
    return ",".join(shape_label(s) for s in grid)
