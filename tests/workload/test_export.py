"""ONNX export of the tiny model: signatures, onnxruntime vs PyTorch, styles, node-name scopes."""
from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest

from workload_helpers import run_ort, run_torch

from engine.layer_groups import layer_group
from workload.data import make_inputs
from workload.errors import WorkloadError
from workload.export import export
from workload.model import build_model

STYLES = ("contest", "modern")
FLOAT, INT32 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT32


@pytest.fixture(scope="module")
def exports(tiny_onnx, tiny_onnx_modern):
    return {"contest": tiny_onnx, "modern": tiny_onnx_modern}


@pytest.fixture(scope="module")
def tiny_model(tiny_model_config):
    return build_model(tiny_model_config, seed=0)


def _signature(values) -> list[tuple[str, int, list]]:
    return [(v.name, v.type.tensor_type.elem_type,
             [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]


@pytest.mark.parametrize("style", STYLES)
def test_encoder_signature(exports, style, tiny_model_config):
    m = onnx.load(str(exports[style]["encoder"]))
    d = tiny_model_config.d_model
    assert _signature(m.graph.input) == [("speech", FLOAT, ["B", "T", 80]), ("speech_lengths", INT32, ["B"])]
    assert _signature(m.graph.output) == [("encoder_out", FLOAT, ["B", "T_OUT", d]), ("encoder_out_lens", INT32, ["B"])]


@pytest.mark.parametrize("style", STYLES)
def test_decoder_signature(exports, style, tiny_model_config):
    m = onnx.load(str(exports[style]["decoder"]))
    d, v = tiny_model_config.d_model, tiny_model_config.vocab
    assert _signature(m.graph.input) == [
        ("encoder_out", FLOAT, ["B", "T", d]), ("encoder_out_lens", INT32, ["B"]),
        ("hyps_pad_sos_eos", INT32, ["B", 10, 64]), ("hyps_lens_sos", INT32, ["B", 10]),
        ("ctc_score", FLOAT, ["B", 10])]
    assert _signature(m.graph.output) == [("decoder_out", FLOAT, ["B", 10, 63, v]), ("best_index", INT32, ["B"])]


@pytest.mark.parametrize("style", STYLES)
def test_styles(exports, style):
    for model_kind in ("encoder", "decoder"):
        m = onnx.load(str(exports[style][model_kind]))
        opset = {o.domain: o.version for o in m.opset_import}[""]
        ops = collections.Counter(n.op_type for n in m.graph.node)
        if style == "contest":
            assert opset == 13
            assert ops["LayerNormalization"] == 0 and ops["ReduceMean"] >= 2 and ops["Sqrt"] >= 1
        else:
            assert opset == 17
            assert ops["LayerNormalization"] >= 1 and ops["ReduceMean"] == 0


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("model_kind", ["encoder", "decoder"])
def test_onnxruntime_matches_pytorch(exports, tiny_model, tiny_model_config, style, model_kind):
    # a single row, a padded batch, and the shortest grid length
    for i, (batch, frames) in enumerate([(1, 64), (3, 97), (2, 16)]):
        feeds = make_inputs(model_kind, batch, frames, 40 + i, tiny_model_config)
        got = run_ort(exports[style][model_kind], feeds)
        want = run_torch(tiny_model, model_kind, feeds)
        assert [g.shape for g in got] == [w.shape for w in want]
        np.testing.assert_allclose(got[0], want[0], atol=1e-4, rtol=0)
        np.testing.assert_array_equal(got[1], want[1])
        assert got[1].dtype == np.int32


def test_encoder_lengths_come_from_the_mask_path(exports):
    """encoder_out_lens is computed through the padding mask (ReduceSum), for a pass to replace."""
    m = onnx.load(str(exports["contest"]["encoder"]))
    (producer,) = [n for n in m.graph.node if "encoder_out_lens" in n.output]
    by_output = {o: n for n in m.graph.node for o in n.output}
    seen, stack = set(), [producer]
    while stack:
        n = stack.pop()
        seen.add(n.op_type)
        stack += [by_output[i] for i in n.input if i in by_output]
    assert "ReduceSum" in seen and "Slice" in seen


@pytest.mark.parametrize("model_kind", ["encoder", "decoder"])
def test_node_names_are_scoped_and_grouped(exports, model_kind):
    """Every compute node sits in a layer group of engine/layer_groups.py, per block where it has one."""
    m = onnx.load(str(exports["contest"][model_kind]))
    compute = ("MatMul", "Conv", "Softmax", "Sigmoid", "Relu", "ReduceMean", "Sqrt", "LogSoftmax", "ArgMax",
               "GatherElements")
    nodes = [n for n in m.graph.node if n.op_type in compute]
    assert nodes
    ungrouped = [n.name for n in nodes if layer_group(model_kind, n.name) is None]
    assert ungrouped == []
    groups = {layer_group(model_kind, n.name) for n in m.graph.node} - {None}
    expected = ({"subsampling", "attention", "softmax", "feed_forward", "conv_module", "norm"}
                if model_kind == "encoder" else
                {"embedding", "self_attention", "cross_attention", "softmax", "feed_forward", "norm", "output"})
    assert groups == expected
    stack = "encoders" if model_kind == "encoder" else "decoders"
    assert any(n.name.startswith(f"/{model_kind}/{stack}.0/feed_forward/w_1/") for n in nodes)
    assert layer_group(model_kind, f"/{model_kind}/{stack}.0/feed_forward/w_1/MatMul", by_block=True) == \
        "block0.feed_forward"


def test_export_rejects_bad_arguments(tmp_path, tiny_model):
    with pytest.raises(WorkloadError, match="style"):
        export("encoder", tmp_path / "e.onnx", style="newest", model=tiny_model)
    with pytest.raises(WorkloadError, match="unknown model"):
        export("joiner", tmp_path / "j.onnx", model=tiny_model)
