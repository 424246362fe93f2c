"""Test-shape selections on the command line: "all" or "1x16,4x64" (batch x frames)."""
from __future__ import annotations

from workload.shapes import GRID

from search.errors import SearchError


def shape_label(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def parse_shape(text: str) -> tuple[int, int]:
    try:
        b, t = text.lower().split("x")
        shape = (int(b), int(t))
    except ValueError:
        raise SearchError(f"shape {text!r} is not BATCHxFRAMES (e.g. 4x64)") from None
    if shape not in GRID:
        raise SearchError(f"shape {text} is not a test shape; the grid is {format_grid(GRID)}")
    return shape


def parse_grid(text: str | None) -> tuple[tuple[int, int], ...] | None:
    """None or "all" -> None (the whole GRID); otherwise the listed shapes, in order."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    shapes = tuple(parse_shape(part.strip()) for part in text.split(",") if part.strip())
    if not shapes:
        raise SearchError(f"grid {text!r} names no shape")
    if len(set(shapes)) != len(shapes):
        raise SearchError(f"grid {text!r} repeats a shape")
    return shapes


def format_grid(grid) -> str:
    return ",".join(shape_label(s) for s in grid)
