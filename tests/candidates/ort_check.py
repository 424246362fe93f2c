"""onnxruntime comparisons for the pass tests (original vs rewritten model)."""
from __future__ import annotations

import numpy as np
import onnx


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def assert_same_outputs(before: onnx.ModelProto, after: onnx.ModelProto, feeds: dict[str, np.ndarray],
                        atol: float = 1e-5, rtol: float = 1e-5) -> None:
    a, b = run_ort(before, feeds), run_ort(after, feeds)
    assert list(a) == list(b), f"outputs changed: {list(a)} -> {list(b)}"
    for name in a:
        x, y = a[name], b[name]
        assert x.shape == y.shape, f"{name}: shape {x.shape} -> {y.shape}"
        assert x.dtype == y.dtype, f"{name}: dtype {x.dtype} -> {y.dtype}"
        if x.dtype.kind in "biu":
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_allclose(y, x, atol=atol, rtol=rtol, err_msg=name)


def op_count(model: onnx.ModelProto, op: str) -> int:
    return sum(n.op_type == op for n in model.graph.node)
