"""Parsing the engine inspector's JSON (TensorRT 8.6 DETAILED layout, fabricated from its documented format)."""
from __future__ import annotations

import pytest

from engine.config import BuildConfig
from engine.inspect import (group_precisions, honoured, is_matrix_layer, layer_precision, name_parts, parse_datatype,
                            precision_counts, precision_mismatches, summary_lines)


def t(name, fmt, dims=(4, 64, 256)):
    return {"Name": name, "Location": "Device", "Dimensions": list(dims), "Format/Datatype": fmt}


FF = "/encoder/encoders.0/feed_forward"
SAMPLE = {"Layers": [
    {"Name": "Reformatting CopyNode for Input Tensor 0 to /encoder/embed/conv/conv.0/Conv", "LayerType": "Reformat",
     "Inputs": [t("speech", "Row major linear FP32")], "Outputs": [t("r0", "Row major linear FP16 format")],
     "ParameterType": "Reformat", "Origin": "REFORMAT", "TacticValue": "0x0"},
    {"Name": "/encoder/embed/conv/conv.0/Conv + /encoder/embed/conv/conv.1/Relu", "LayerType": "CaskConvolution",
     "Inputs": [t("r0", "Channel major FP16 format where channel % 8 == 0")],
     "Outputs": [t("c0", "Channel major FP16 format where channel % 8 == 0")], "ParameterType": "Convolution",
     "TacticName": "sm80_xmma_fprop", "TacticValue": "0x1"},
    {"Name": f"{FF}/w_1/MatMul", "LayerType": "CaskGemmMatrixMultiply",
     "Inputs": [t("a", "Row major Int8 format"), t("w", "Row major Int8 format")],
     "Outputs": [t("b", "Row major linear FP32")], "ParameterType": "MatrixMultiply", "TacticValue": "0x2"},
    {"Name": f"PWN(PWN({FF}/activation/Sigmoid), {FF}/activation/Mul)", "LayerType": "PointWiseV2",
     "Inputs": [t("b", "Row major linear FP32")], "Outputs": [t("c", "Row major linear FP32")],
     "ParameterType": "PointWise", "TacticValue": "0x3"},
    {"Name": "{ForeignNode[/encoder/encoders.0/self_attn/linear_q/MatMul.../encoder/encoders.0/norm_ff/Add_1]}",
     "LayerType": "Myelin", "Inputs": [t("c", "Row major linear FP16 format")],
     "Outputs": [t("d", "Row major linear FP16 format")], "TacticValue": "0x0"},
    {"Name": "/encoder/Cast_1", "LayerType": "Cast", "Inputs": [t("l", "Row major linear FP32", (4,))],
     "Outputs": [t("encoder_out_lens", "Row major linear Int32", (4,))], "TacticValue": "0x0"},
    {"Name": "/encoder/Equal", "LayerType": "ElementWise", "Inputs": [t("x", "Row major linear Int32", (4,))],
     "Outputs": [t("m", "Row major linear BOOL", (4,))]},
], "Bindings": ["speech", "speech_lengths", "encoder_out", "encoder_out_lens"]}


@pytest.mark.parametrize("fmt,want", [
    ("Row major linear FP32", "fp32"), ("Row major linear FP16 format", "fp16"),
    ("Channel major FP16 format where channel % 8 == 0", "fp16"), ("Row major Int8 format", "int8"),
    ("Channel major INT8 format where column stride % 32 == 0", "int8"), ("Row major linear Int32", "int32"),
    ("Row major linear BOOL", "bool"), ("Thirty-two wide channel vectorized row major Int8 format", "int8"),
    ("Unknown format", None), (None, None)])
def test_parse_datatype(fmt, want):
    assert parse_datatype(fmt) == want


def test_layer_precision_words():
    words = [layer_precision(l) for l in SAMPLE["Layers"]]
    # an int8 GEMM reads int8 and writes fp32: it counts as int8; a Cast reads fp32
    assert words == ["reformat", "fp16", "int8", "fp32", "myelin", "fp32", "int32"]
    assert layer_precision("/encoder/some/layer") == "unknown"      # LAYER_NAMES_ONLY verbosity


def test_precision_counts():
    assert precision_counts(SAMPLE, "encoder") == {"fp16": 1, "fp32": 2, "int32": 1, "int8": 1, "myelin": 1,
                                                   "reformat": 1}
    assert precision_counts({"Layers": ["a", "b"]}) == {"unknown": 2}


def test_name_parts_of_fused_and_myelin_layers():
    assert name_parts("{ForeignNode[/a/b/MatMul.../c/Add_1]}") == ["/a/b/MatMul", "/c/Add_1"]
    assert name_parts("PWN(PWN(/x/Sigmoid), /x/Mul)") == ["/x/Sigmoid", "/x/Mul"]
    assert name_parts("/encoder/encoders.0/a + /encoder/encoders.1/b") == ["/encoder/encoders.0/a",
                                                                            "/encoder/encoders.1/b"]


def test_group_precisions():
    groups = group_precisions("encoder", SAMPLE)
    assert groups["subsampling"] == {"fp16": 1}
    assert groups["feed_forward"] == {"fp32": 1, "int8": 1}
    assert groups["attention"] == {"myelin": 1} and groups["norm"] == {"myelin": 1}
    assert "block0.feed_forward" in group_precisions("encoder", SAMPLE, by_block=True)


def test_precision_mismatches_report_what_did_not_land():
    mism = precision_mismatches("encoder", SAMPLE, {"feed_forward": "fp16", "subsampling": "fp16",
                                                     "attention": "fp32", "conv_module": "fp16"})
    assert set(mism) == {"feed_forward", "attention", "conv_module"}
    assert mism["feed_forward"]["found"] == {"fp32": 1, "int8": 1}
    assert mism["attention"]["found"] == {"myelin": 1} and mism["conv_module"]["found"] == {}
    assert precision_mismatches("encoder", SAMPLE, {"subsampling": "fp16"}) == {}
    # int8 pins the group's matmuls only: its int8 GEMM and fp32 pointwise layer are as planned
    assert precision_mismatches("encoder", SAMPLE, {"feed_forward": "int8"}) == {}


def test_matrix_layers_of_the_inspector():
    assert [is_matrix_layer(l) for l in SAMPLE["Layers"]] == [False, True, True, False, False, False, False]
    assert is_matrix_layer({"LayerType": "Matrix_Multiply"}) and is_matrix_layer({"LayerType": "CaskGemmConvolution"})
    assert not is_matrix_layer("/encoder/encoders.0/feed_forward/w_1/MatMul")


def test_honoured_per_pinned_group():
    cfg = BuildConfig("encoder", fp16=True, int8=True, layer_precision={
        "feed_forward": "int8", "subsampling": "fp16", "attention": "fp32", "conv_module": "fp16", "norm": "fp32"})
    check = honoured(cfg, SAMPLE)
    g = check["groups"]
    assert not check["honoured"] and set(g) == set(cfg.layer_precision)
    assert g["feed_forward"] == {"requested": "int8", "seen": {"int8": 1}, "others": {"fp32": 1}, "hidden": 0,
                                 "honoured": True, "note": ""}
    assert g["subsampling"]["honoured"] and g["subsampling"]["seen"] == {"fp16": 1}
    assert not g["attention"]["honoured"] and g["attention"]["hidden"] == 1 and "Myelin" in g["attention"]["note"]
    assert not g["conv_module"]["honoured"] and g["conv_module"]["note"] == "no engine layer of this group"
    assert not g["norm"]["honoured"] and g["norm"]["hidden"] == 1
    # the worker's view: result.json's config dict; a group running at another precision
    wrong = honoured({"model": "encoder", "layer_precision": {"subsampling": "fp32"}}, SAMPLE)
    assert not wrong["honoured"] and wrong["groups"]["subsampling"]["seen"] == {"fp16": 1}
    assert "runs at fp16 where fp32 was requested" == wrong["groups"]["subsampling"]["note"]
    assert honoured(BuildConfig("encoder"), SAMPLE) == {"honoured": True, "groups": {}}


def test_honoured_ignores_casts_and_reads_block_pins():
    cast = {"Name": f"{FF}/Cast", "LayerType": "Cast", "Inputs": [t("x", "Row major linear FP32")],
            "Outputs": [t("y", "Row major linear FP16 format")]}
    info = {"Layers": SAMPLE["Layers"][2:4] + [cast]}
    check = honoured({"model": "encoder", "layer_precision": {"feed_forward": "fp16", "block0.feed_forward": "int8"}},
                     info)
    assert check["groups"]["block0.feed_forward"]["honoured"] and check["groups"]["block0.feed_forward"]["seen"] == {
        "int8": 1}
    assert not check["groups"]["feed_forward"]["honoured"]             # block 0 is more specific: nothing left
    names_only = honoured({"model": "encoder", "layer_precision": {"feed_forward": "fp16"}},
                          {"Layers": [f"{FF}/w_1/MatMul"]})
    assert not names_only["honoured"] and "detailed profiling" in names_only["groups"]["feed_forward"]["note"]


def test_summary_lines():
    lines = summary_lines(SAMPLE, "encoder")
    assert lines[0] == "7 engine layers" and lines[1].startswith("precision: fp16 1")
    assert any(l.strip().startswith("feed_forward:") for l in lines)


def test_inspector_json_with_raw_control_characters_parses():
    # TensorRT 8.6 on the H200 wrote a raw newline inside a Myelin layer name.
    from types import SimpleNamespace

    from engine.trt_backend import engine_information
    text = '{"Layers": [{"Name": "{ForeignNode[a\n...b]}", "LayerType": "Myelin"}], "Bindings": []}'
    inspector = SimpleNamespace(get_engine_information=lambda fmt: text)
    engine = SimpleNamespace(create_engine_inspector=lambda: inspector)
    trt = SimpleNamespace(LayerInformationFormat=SimpleNamespace(JSON="json"))
    info = engine_information(engine, trt)
    assert info["Layers"][0]["Name"] == "{ForeignNode[a\n...b]}"
