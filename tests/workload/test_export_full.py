"""The full-size (AISHELL-1) export: ~190 MB of ONNX, so `slow`; about 10 s on 2 CPU cores."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from workload_helpers import run_ort, run_torch

from workload.data import make_inputs
from workload.export import export_all
from workload.model import build_model
from workload.model_config import ModelConfig


@pytest.mark.slow
def test_full_size_export_matches_pytorch(tmp_path):
    cfg = ModelConfig.aishell()
    paths = export_all(tmp_path, "contest", config=cfg, seed=0)
    model = build_model(cfg, seed=0)
    enc = onnx.load(str(paths["encoder"]), load_external_data=False)
    dims = [d.dim_param or d.dim_value for d in enc.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["B", "T_OUT", 256]
    names = {n.name for n in enc.graph.node}
    assert "/encoder/encoders.11/feed_forward/w_1/MatMul" in names
    dec = onnx.load(str(paths["decoder"]), load_external_data=False)
    dims = [d.dim_param or d.dim_value for d in dec.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["B", 10, 63, 4233]
    del enc, dec
    for kind in ("encoder", "decoder"):
        feeds = make_inputs(kind, 2, 40, 1, cfg)
        got, want = run_ort(paths[kind], feeds), run_torch(model, kind, feeds)
        np.testing.assert_allclose(got[0], want[0], atol=1e-4, rtol=0)
        np.testing.assert_array_equal(got[1], want[1])
