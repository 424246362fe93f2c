"""Test-shape selections on the command line: all, stress, full or "1x16,4x64" (batch x frames)."""
from __future__ import annotations

from workload.shapes import ALL_SHAPES, GRID, STRESS_GRID

from search.errors import SearchError

NAMED_GRIDS = {"all": GRID, "stress": STRESS_GRID, "full": ALL_SHAPES}   # all: the judged grid


def shape_label(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def parse_shape(text: str) -> tuple[int, int]:
    try:
        b, t = text.lower().split("x")
        shape = (int(b), int(t))
    except ValueError:
        raise SearchError(f"shape {text!r} is not BATCHxFRAMES (e.g. 4x64)") from None
    if shape not in ALL_SHAPES:
        raise SearchError(f"shape {text} is not a test shape; the shapes are {format_grid(ALL_SHAPES)}")
    return shape


def parse_grid(text: str | None) -> tuple[tuple[int, int], ...]:
    """None, "" or "all" -> GRID; "stress" -> STRESS_GRID; "full" -> both; else the listed shapes, in order."""
    key = "all" if text is None or not text.strip() else text.strip().lower()
    if key in NAMED_GRIDS:
        return NAMED_GRIDS[key]
    shapes = tuple(parse_shape(part.strip()) for part in text.split(",") if part.strip())
    if not shapes:
        raise SearchError(f"grid {text!r} names no shape")
    if len(set(shapes)) != len(shapes):
        raise SearchError(f"grid {text!r} repeats a shape")
    return shapes


def format_grid(grid) -> str:
    return ",".join(shape_label(s) for s in grid)
