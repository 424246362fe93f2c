"""Workload tests run PyTorch on one thread: the models are small, and on a busy 2-core
machine (other suites running beside) two OpenMP threads made a forward pass ~20x slower.
Module-scoped fixtures that run torch use workload_helpers.one_torch_thread() themselves."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    pytest.importorskip("torch")
    from workload_helpers import one_torch_thread
    with one_torch_thread():
        yield
