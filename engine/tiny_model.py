"""A tiny ONNX graph with the WeNet encoder's I/O names and node scopes, its inputs, onnxruntime
references and test/calibration files: what the probe and the CPU tests build engines from."""
from __future__ import annotations

from pathlib import Path

import numpy as np

FEATURES = 80                    # the encoder's fbank width: the tiny graph fits the encoder profile
SHAPES = ((1, 16), (4, 64))      # (batch, frames) checked against onnxruntime


def tiny_encoder_model(seed: int = 0):
    """An opset-13 ONNX model with the encoder's I/O names and WeNet-like node scopes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    f = FEATURES
    inits = {
        "conv_w": rng.standard_normal((2, 1, 3, 3)).astype(np.float32) * 0.3,
        "conv_b": rng.standard_normal((2,)).astype(np.float32) * 0.1,
        "w1": rng.standard_normal((f, f)).astype(np.float32) / np.sqrt(f),
        "b1": rng.standard_normal((f,)).astype(np.float32) * 0.1,
        "gamma": (1 + 0.1 * rng.standard_normal((f,))).astype(np.float32),
        "beta": (0.1 * rng.standard_normal((f,))).astype(np.float32),
        "axes1": np.array([1], dtype=np.int64),
        "two": np.array(2.0, dtype=np.float32),
        "eps": np.array(1e-5, dtype=np.float32),
        "quarter": np.array(0.25, dtype=np.float32),
    }
    inits = {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in inits.items()}
    e, ff, ln, att = "/encoder/embed/conv", "/encoder/encoders.0/feed_forward", "/encoder/encoders.0/norm_ff", \
        "/encoder/encoders.0/self_attn"
    n = helper.make_node
    nodes = [
        n("Unsqueeze", ["speech", "axes1"], ["x4"], name=f"{e}/Unsqueeze"),
        n("Conv", ["x4", "conv_w", "conv_b"], ["c"], name=f"{e}/conv.0/Conv", pads=[1, 1, 1, 1]),
        n("ReduceMean", ["c"], ["sub"], name=f"{e}/conv.1/ReduceMean", axes=[1], keepdims=0),
        n("MatMul", ["sub", "w1"], ["h0"], name=f"{ff}/w_1/MatMul"),
        n("Add", ["h0", "b1"], ["h1"], name=f"{ff}/w_1/Add"),
        n("Sigmoid", ["h1"], ["sg"], name=f"{ff}/activation/Sigmoid"),
        n("Mul", ["h1", "sg"], ["h"], name=f"{ff}/activation/Mul"),
        n("ReduceMean", ["h"], ["mu"], name=f"{ln}/ReduceMean", axes=[-1], keepdims=1),
        n("Sub", ["h", "mu"], ["d"], name=f"{ln}/Sub"),
        n("Pow", ["d", "two"], ["d2"], name=f"{ln}/Pow"),
        n("ReduceMean", ["d2"], ["var"], name=f"{ln}/ReduceMean_1", axes=[-1], keepdims=1),
        n("Add", ["var", "eps"], ["ve"], name=f"{ln}/Add"),
        n("Sqrt", ["ve"], ["sd"], name=f"{ln}/Sqrt"),
        n("Div", ["d", "sd"], ["nz"], name=f"{ln}/Div"),
        n("Mul", ["nz", "gamma"], ["ng"], name=f"{ln}/Mul"),
        n("Add", ["ng", "beta"], ["y"], name=f"{ln}/Add_1"),
        n("Softmax", ["y"], ["p"], name=f"{att}/Softmax", axis=-1),
        n("Add", ["y", "p"], ["encoder_out"], name="/encoder/after_norm/Add"),
        n("Cast", ["speech_lengths"], ["lf"], name="/encoder/Cast", to=TensorProto.FLOAT),
        n("Mul", ["lf", "quarter"], ["lq"], name="/encoder/Mul"),
        n("Floor", ["lq"], ["lfl"], name="/encoder/Floor"),
        n("Cast", ["lfl"], ["encoder_out_lens"], name="/encoder/Cast_1", to=TensorProto.INT32),
    ]
    graph = helper.make_graph(
        nodes, "tiny_encoder",
        [helper.make_tensor_value_info("speech", TensorProto.FLOAT, ["B", "T", f]),
         helper.make_tensor_value_info("speech_lengths", TensorProto.INT32, ["B"])],
        [helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, ["B", "T", f]),
         helper.make_tensor_value_info("encoder_out_lens", TensorProto.INT32, ["B"])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="engine.probe")
    model.ir_version = min(model.ir_version, 8)       # readable by TensorRT 8.6's parser
    onnx.checker.check_model(model)
    return model


def tiny_feeds(batch: int, frames: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, batch, frames])
    lengths = np.full(batch, frames, dtype=np.int32)
    if batch > 1:
        lengths[1:] = rng.integers(7, frames, size=batch - 1)
    return {"speech": rng.standard_normal((batch, frames, FEATURES)).astype(np.float32), "speech_lengths": lengths}


def ort_outputs(model_path: str | Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def write_calibration(path: Path, batches: int = 4, shape: tuple[int, int] = (4, 64)) -> Path:
    """calibration npz in workload.data's layout: <input>__<i>."""
    arrays = {}
    for i in range(batches):
        for k, v in tiny_feeds(*shape, seed=100 + i).items():
            arrays[f"{k}__{i}"] = v
    np.savez(path, **arrays)
    return path


def write_cases(data_dir: Path, model_path: Path, shapes=SHAPES) -> list[tuple[int, int]]:
    """encoder-{b}-{t}.npz test files with onnxruntime references (lengths, not the mask: no reduction)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for b, t in shapes:
        feeds = tiny_feeds(b, t)
        ref = ort_outputs(model_path, feeds)
        np.savez(data_dir / f"encoder-{b}-{t}.npz", **feeds, **ref)
    return list(shapes)
