"""Every graph pass: original vs rewritten model in onnxruntime, sites found, idempotence, structure.

Run on both export styles and on every available export (see conftest.py), at a
single row and at a padded batch.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from candidates import apply_passes, available_passes, get_pass
from ort_check import assert_same_outputs, op_count
from wenet_models import STYLES

# Which (model, style) each pass must find sites in; elsewhere it may find none.
TARGETS = {
    "fold_constants": {("encoder", "contest"), ("decoder", "contest"), ("encoder", "modern"), ("decoder", "modern")},
    "layernorm": {("encoder", "contest"), ("decoder", "contest")},
    "encoder_lengths": {("encoder", "contest"), ("encoder", "modern")},
    "attention_mask": {("encoder", "contest"), ("decoder", "contest"), ("encoder", "modern"), ("decoder", "modern")},
    "subsampling_conv": {("encoder", "contest"), ("encoder", "modern")},
    "ffn_2d_matmul": {("encoder", "contest"), ("decoder", "contest"), ("encoder", "modern"), ("decoder", "modern")},
    "merge_qkv": {("encoder", "contest"), ("decoder", "contest"), ("encoder", "modern"), ("decoder", "modern")},
    "pos_enc_slice": {("encoder", "contest"), ("encoder", "modern")},
    "static_dims": {("encoder", "contest"), ("decoder", "contest"), ("encoder", "modern"), ("decoder", "modern")},
    "decoder_masks": {("decoder", "contest"), ("decoder", "modern")},
    "decoder_scoring": {("decoder", "contest"), ("decoder", "modern")},
    "memory_kv_once": {("decoder", "contest"), ("decoder", "modern")},
    "bool_slice": {("encoder", "contest"), ("encoder", "modern")},
}


def _cases():
    return [(p, m, s) for p in available_passes() for m in get_pass(p).models for s in STYLES]


def test_every_registered_pass_has_targets():
    assert set(available_passes()) == set(TARGETS)


def _structure_checks(name: str, before: onnx.ModelProto, after: onnx.ModelProto, sites: int, model: str):
    """What each rewrite must visibly have done (beyond giving the same outputs)."""
    ops = lambda m: [n.op_type for n in m.graph.node]  # noqa: E731
    if name == "layernorm":
        assert "ReduceMean" not in ops(after) and "Pow" not in ops(after)
        assert op_count(after, "LayerNormalization") == op_count(before, "LayerNormalization") + sites
        assert max(i.version for i in after.opset_import if i.domain in ("", "ai.onnx")) >= 17
    elif name == "encoder_lengths":
        producers = {o: n for n in after.graph.node for o in n.output}
        node, seen = producers["encoder_out_lens"], []
        while node is not None and len(seen) < 8:  # the lengths no longer come from a ReduceSum
            seen.append(node.op_type)
            node = producers.get(node.input[0])
        assert "ReduceSum" not in seen and "Min" in seen
    elif name == "attention_mask":
        producers = {o: n for n in after.graph.node for o in n.output}
        softmax_inputs = [producers[n.input[0]].op_type for n in after.graph.node if n.op_type == "Softmax"]
        assert softmax_inputs and all(op == "Add" for op in softmax_inputs)
        # one additive mask per distinct mask (encoder: 1; decoder: causal+padding and memory), not per block
        assert op_count(after, "ReduceMax") == (1 if model == "encoder" else 2)
    elif name == "subsampling_conv":
        assert op_count(after, "Conv") == op_count(before, "Conv") + 1
    elif name == "ffn_2d_matmul":
        assert op_count(after, "Reshape") == op_count(before, "Reshape") + 2 * sites
    elif name == "merge_qkv":
        assert op_count(after, "Split") == op_count(before, "Split") + sites
        assert op_count(after, "MatMul") == op_count(before, "MatMul") - 2 * sites
    elif name == "pos_enc_slice":
        big = [i for i in after.graph.initializer if len(i.dims) >= 2 and max(i.dims) > 1000 and
               i.data_type == onnx.TensorProto.FLOAT and 1 in i.dims]
        assert not big, "positional table not trimmed"
    elif name == "static_dims":
        assert op_count(after, "Shape") < op_count(before, "Shape")
    elif name == "decoder_scoring":
        inputs = {i.name for i in after.graph.input}
        widening = [n for n in after.graph.node if n.op_type == "Cast" and n.input[0] in inputs
                    and onnx.helper.get_attribute_value(n.attribute[0]) == onnx.TensorProto.INT64]
        assert not widening
    elif name == "memory_kv_once":
        reads_source = [n for n in after.graph.node if n.op_type == "MatMul" and n.input[0] == "encoder_out"]
        assert len(reads_source) == sites
    elif name in ("fold_constants", "decoder_masks"):
        assert len(after.graph.node) < len(before.graph.node)


@pytest.mark.parametrize("name,model,style", _cases())
def test_pass_matches_onnxruntime(workloads, name, model, style):
    for wl in workloads:
        before = wl.load(style, model)
        after, sites = apply_passes(before, [name], model_name=model)
        n = sites[name]
        if (model, style) in TARGETS[name]:
            assert n > 0, f"{wl.source}: {name} found no site in the {style} {model}"
        elif name == "layernorm":
            assert n == 0, "the modern export already has LayerNormalization"
        again, sites2 = apply_passes(after, [name])
        assert sites2[name] == 0, f"{wl.source}: {name} is not idempotent ({sites2[name]} more sites)"
        onnx.checker.check_model(after)
        if n:
            _structure_checks(name, before, after, n, model)
        for i, (batch, frames) in enumerate(wl.shapes):
            feeds = wl.make_inputs(model, batch, frames, 11 + i)
            assert_same_outputs(before, after, feeds)


@pytest.mark.parametrize("model", ["encoder", "decoder"])
@pytest.mark.parametrize("style", STYLES)
def test_all_passes_together(workloads, model, style):
    names = available_passes(model)
    for wl in workloads:
        before = wl.load(style, model)
        after, sites = apply_passes(before, names, model_name=model)
        assert sum(sites.values()) > 0
        _, again = apply_passes(after, names)
        assert not any(again.values()), f"{wl.source}: not idempotent together: {again}"
        for i, (batch, frames) in enumerate(wl.shapes):
            assert_same_outputs(before, after, wl.make_inputs(model, batch, frames, 21 + i))


@pytest.mark.parametrize("model", ["encoder", "decoder"])
def test_all_passes_in_reverse_order(workloads, model):
    """No pass relies on another having run first (each still gives the same outputs)."""
    names = list(reversed(available_passes(model)))
    wl = workloads[0]
    before = wl.load("contest", model)
    after, _ = apply_passes(before, names, model_name=model)
    for i, (batch, frames) in enumerate(wl.shapes):
        assert_same_outputs(before, after, wl.make_inputs(model, batch, frames, 31 + i))


# --- inputs the random feeds rarely produce -------------------------------------------
def test_encoder_lengths_edge_lengths(workloads):
    """Lengths of 1..8 frames (0..1 valid after subsampling) and beyond T keep the mask-sum values."""
    for wl in workloads:
        for style in STYLES:
            before = wl.load(style, "encoder")
            after, _ = apply_passes(before, ["encoder_lengths"])
            feeds = wl.make_inputs("encoder", 8, 40, 5)
            feeds["speech_lengths"] = np.array([40, 1, 3, 6, 7, 8, 11, 57], dtype=feeds["speech_lengths"].dtype)
            assert_same_outputs(before, after, feeds)


def test_attention_mask_fully_masked_rows(workloads):
    """A sequence with no valid key (zero-length utterance / encoder output) still gets zero attention."""
    for wl in workloads:
        enc = wl.load("contest", "encoder")
        after, sites = apply_passes(enc, ["attention_mask"])
        assert sites["attention_mask"] > 0
        feeds = wl.make_inputs("encoder", 3, 40, 7)
        feeds["speech_lengths"] = np.array([40, 3, 0], dtype=feeds["speech_lengths"].dtype)  # 0 valid frames
        assert_same_outputs(enc, after, feeds)

        dec = wl.load("contest", "decoder")
        after, _ = apply_passes(dec, ["attention_mask"])
        feeds = wl.make_inputs("decoder", 3, 40, 8)
        feeds["encoder_out_lens"] = np.array([feeds["encoder_out"].shape[1], 0, 2],
                                             dtype=feeds["encoder_out_lens"].dtype)
        lens = feeds["hyps_lens_sos"].copy()
        lens[1, :3] = 0                                                              # empty hypotheses
        feeds["hyps_lens_sos"] = lens
        assert_same_outputs(dec, after, feeds)
