"""Fixtures for the pass tests: see wenet_models.py for the models used."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wenet_models import Workload, collect_workloads  # noqa: E402


@pytest.fixture(scope="session")
def workloads(request, tmp_path_factory) -> list[Workload]:
    return collect_workloads(request, tmp_path_factory.mktemp("mini_wenet"))
