"""The registry of README's inline numbers: each KEY, the result files it reads, and its formats.

README writes one as `<!-- n:KEY -->26.14 ms<!-- /n -->`; `python3 -m bench.report` rewrites the text
between the two markers with `value(src, KEY)` and `--check` fails where it differs or KEY is not here
(bench.report_inline). A KEY whose file is absent gives `[not made: bench/results/... is missing]`,
as a block does. The numbers themselves are registered by bench.report_numbers_layouts and
bench.report_numbers_study (bench.report_numbers imports both).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from bench.report_data import Sources
from bench.report_sources import ReportInputError


@dataclass(frozen=True)
class Number:
    files: tuple[str, ...]            # keys of bench.report_sources.FILES it reads
    what: str                         # what the value is, in words (the --numbers listing)
    fn: Callable[[Sources], str]


NUMBERS: dict[str, Number] = {}


def number(key: str, files: str, what: str, fn: Callable[[Sources], str]) -> None:
    """Register KEY: `files` the comma-separated keys of bench.report_sources.FILES that `fn` reads."""
    if key in NUMBERS:
        raise ValueError(f"number {key} registered twice")
    NUMBERS[key] = Number(tuple(files.split(",")), what, fn)


def value(src: Sources, key: str) -> str:
    n = NUMBERS[key]
    gone = [k for k in n.files if src.data.get(k) is None]
    text = f"[not made: {src.missing(gone[0])}]" if gone else n.fn(src)
    if "<" in text or "\n" in text:               # it would end the marker early
        raise ReportInputError(f"inline number {key} gives {text[:60]!r}: no '<' or line break allowed")
    return text


# --- formats ----------------------------------------------------------------------------------------
def ms(x: float, d: int = 1) -> str:
    return f"{x:.{d}f} ms"


def times(x: float, d: int = 2) -> str:
    return f"{x:.{d}f}x"


def pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def sci(x: float) -> str:
    """1.9e-6, not 1.9e-06."""
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{x:.1e}")


def span(xs, fmt: Callable[[float], str], unit: str = "") -> str:
    """'17-26 ms' for fmt '{:.0f}' and unit ' ms'; one value when both ends print alike."""
    lo, hi = fmt(min(xs)), fmt(max(xs))
    return (lo if lo == hi else f"{lo}-{hi}") + unit
