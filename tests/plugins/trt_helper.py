"""A minimal TensorRT build-and-run helper for the GPU tests (polygraphy; TensorRT imported lazily).

Self-contained on purpose (engine/ only says whether cuDNN loads): the plugin tests must not
depend on engine/'s builder to check that a rewrite builds and computes the same as the graph without it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx


def build_and_run(model: onnx.ModelProto, feeds_list: list[dict[str, np.ndarray]], tmp: Path,
                  fp16: bool = False) -> list[dict[str, np.ndarray]]:
    """Build one engine whose profile spans the feeds' shapes, run every feed, return the outputs."""
    from polygraphy.backend.trt import CreateConfig, EngineFromNetwork, NetworkFromOnnxPath, Profile, TrtRunner

    from plugins.library import init_builtin_plugins

    init_builtin_plugins()
    path = tmp / f"model_{abs(hash(model.SerializeToString())) % 10**8}.onnx"
    onnx.save(model, str(path))
    profile = Profile()
    for name in feeds_list[0]:
        shapes = np.array([f[name].shape for f in feeds_list])
        lo, hi = tuple(int(x) for x in shapes.min(0)), tuple(int(x) for x in shapes.max(0))
        profile.add(name, min=lo, opt=hi, max=hi)
    import tensorrt as trt

    from engine.trt_compat import cudnn_loadable
    # Without cuDNN's libraries (the GPU host's rig) the CUDNN source aborts the process.
    sources = [s for name, s in trt.TacticSource.__members__.items() if name != "CUDNN" or cudnn_loadable(trt)]
    config = CreateConfig(fp16=fp16, tf32=False, profiles=[profile], tactic_sources=sources)
    engine = EngineFromNetwork(NetworkFromOnnxPath(str(path)), config=config)
    outs = []
    with TrtRunner(engine) as runner:
        for feeds in feeds_list:
            outs.append({k: np.array(v) for k, v in runner.infer(feed_dict=feeds).items()})
    return outs


def assert_close(a: list[dict], b: list[dict], atol: float, rtol: float) -> None:
    for x, y in zip(a, b):
        assert set(x) == set(y)
        for name in x:
            if x[name].dtype.kind in "biu":
                np.testing.assert_array_equal(y[name], x[name], err_msg=name)
            else:
                np.testing.assert_allclose(y[name], x[name], atol=atol, rtol=rtol, err_msg=name)
