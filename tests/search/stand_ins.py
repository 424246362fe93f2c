"""Stand-in model files and test data for tuning runs with the fake trial worker.

`tune` checks before its first trial that each model's ONNX is readable and is that model's
(its inputs), and that every test file of the grid (and, with INT8, the calibration set) reads
with the right arrays; the fake worker opens none of them. These are the smallest files that
pass: an ONNX of the model's inputs and outputs with a node of every layer group (in each of
NUM_BLOCKS blocks, so block granularity counts them), and .npz files of one-element arrays.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from engine.evaluation import case_keys
from scoring.metrics import rules
from workload.shapes import ALL_SHAPES, MODELS, input_shapes

NUM_BLOCKS = {"encoder": 12, "decoder": 6}
# Node names as the export scopes them, one per layer group (engine/layer_groups.py), in graph order.
_BEFORE = {"encoder": ["/encoder/embed/conv/Conv"], "decoder": ["/decoder/embed/Gather"]}
_BLOCK = {"encoder": ["norm_ff/Add", "feed_forward/w_1/MatMul", "self_attn/linear_q/MatMul", "self_attn/Softmax",
                      "conv_module/pointwise_conv1/Conv"],
          "decoder": ["norm1/Add", "self_attn/linear_q/MatMul", "self_attn/Softmax", "src_attn/linear_q/MatMul",
                      "feed_forward/w_1/MatMul"]}
_AFTER = {"encoder": ["/encoder/after_norm/Add"], "decoder": ["/decoder/after_norm/Add", "/decoder/output_layer/MatMul"]}


def stand_in_onnx(model: str) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in input_shapes(model, 1, 16)]
    outputs = [helper.make_tensor_value_info(r.name, TensorProto.FLOAT, None) for r in rules(model)]
    first = inputs[0].name
    names = _BEFORE[model] + [f"/{model}/{model}s.{i}/{op}" for i in range(NUM_BLOCKS[model]) for op in _BLOCK[model]]
    nodes = [helper.make_node("Identity", [first], [f"t{k}"], name=name) for k, name in enumerate(names + _AFTER[model])]
    nodes += [helper.make_node("Identity", [first], [o.name], name=f"/{model}/out{k}/Identity")
              for k, o in enumerate(outputs)]
    graph = helper.make_graph(nodes, f"stand-in {model}", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def write_stand_ins(work: Path, models=MODELS, onnx_dir: Path | None = None, data_dir: Path | None = None) -> Path:
    """work/onnx/<model>.onnx and work/data/ (every test shape and the calibration sets) for `models`."""
    onnx_dir = onnx_dir or work / "onnx"
    data_dir = data_dir or work / "data"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    for model in models:
        onnx.save(stand_in_onnx(model), str(onnx_dir / f"{model}.onnx"))
        arrays = {k: np.zeros(1, np.float32) for k in case_keys(model)}
        for b, t in ALL_SHAPES:
            np.savez(data_dir / f"{model}-{b}-{t}.npz", **arrays)
        np.savez(data_dir / f"calibration-{model}.npz",
                 **{f"{k}__0": np.zeros(1, np.float32) for k in input_shapes(model, 1, 16)})
    return work
