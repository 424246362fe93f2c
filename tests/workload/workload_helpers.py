"""Helpers for the workload tests: run a model in onnxruntime and in PyTorch on the same feeds."""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the whole workload test folder needs torch

from workload.export import wrapper  # noqa: E402
from workload.wrappers import DECODER_INPUTS, ENCODER_INPUTS  # noqa: E402

INPUTS = {"encoder": ENCODER_INPUTS, "decoder": DECODER_INPUTS}


def run_ort(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_torch(model, kind: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        outs = wrapper(model, kind)(*(torch.from_numpy(feeds[n]) for n in INPUTS[kind]))
    return [o.numpy() for o in outs]


@contextlib.contextmanager
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
