"""The numbers README's prose quotes, each computed from one committed bench/results file.

`python3 -m bench.report --numbers` lists every KEY, its value and its file. The registry is
bench.report_registry; importing this module registers every number (a newcomer adds one to the
module of its result file).
"""
from __future__ import annotations

import bench.report_numbers_layouts  # noqa: F401  (registers its numbers)
import bench.report_precision  # noqa: F401  (registers its numbers)
import bench.report_numbers_study  # noqa: F401  (registers its numbers)
import bench.report_numbers_torch  # noqa: F401  (registers its numbers)
from bench.report_registry import NUMBERS, value

__all__ = ["NUMBERS", "value"]
