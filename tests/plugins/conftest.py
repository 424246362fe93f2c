"""Fixtures for the plugin tests: the same models as the pass tests (tests/candidates/wenet_models.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "candidates"))
sys.path.insert(0, str(HERE))
from wenet_models import Workload, collect_workloads  # noqa: E402


@pytest.fixture(scope="session")
def plugin_workloads(request, tmp_path_factory) -> list[Workload]:
    return collect_workloads(request, tmp_path_factory.mktemp("mini_wenet_plugins"))
