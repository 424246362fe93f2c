"""GPU tests: each plugin rewrite built with TensorRT and compared with the engine without it.

Run on the GPU host (`pytest -m gpu tests/plugins`); skipped without TensorRT.
The synthetic tests need only onnx; the model tests need the tiny exports (torch).
Our library's tests build it with plugins/build_plugins.sh (nvcc, TRT_INCLUDE; TRT_LIB defaults to
the tensorrt package's folder) unless WENET_TRT_PLUGIN_LIB names a built one.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from candidates import apply_passes, available_passes
from emulate import PLUGIN_DOMAIN, reference_layernorm, reference_log_softmax
from plugins import apply_plugins, required_creators, usable_plugins
from plugins.library import discover_plugin_libraries, init_builtin_plugins, load_plugin_libraries, \
    missing_creators, plugin_creators
from plugins.wenet_plugins import LIBRARY_NAME
from trt_helper import assert_close, build_and_run

pytestmark = pytest.mark.gpu
E = 64


def _residual_layernorm_model() -> onnx.ModelProto:
    """a, b [B, T, E] -> LayerNormalization(a + b) -> Relu (so the LN output is not a graph output)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["n"], axis=-1, epsilon=1e-5),
             helper.make_node("Relu", ["n"], ["y"])]
    graph = helper.make_graph(
        nodes, "residual_ln",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["B", "T", E]) for x in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "T", E])],
        [numpy_helper.from_array((1 + 0.1 * rng.standard_normal(E)).astype(np.float32), "gamma"),
         numpy_helper.from_array((0.1 * rng.standard_normal(E)).astype(np.float32), "beta")])
    # IR 8: the rig's onnxruntime (the shape probe of the fused rewrites) reads IR <= 11 only
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _feeds(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [{x: rng.standard_normal((b, t, E)).astype(np.float32) for x in "ab"} for b, t in shapes]


def test_registry_has_the_creators_the_rewrites_claim():
    init_builtin_plugins()
    creators = plugin_creators()
    pairs = set(creators)
    assert ("CustomSkipLayerNormPluginDynamic", "1") in pairs
    assert "skip_layernorm_plugin" in usable_plugins(creators)
    # The OSS 8.6.0 changelog says LayerNorm v1 was removed, yet the 8.6.0 pip wheel's registry has it
    # (plugins-gputests-h200.log): the rewrite is offered exactly where its creator loads.
    has_ln = ("LayerNorm", "1") in pairs
    assert ("layernorm_plugin" in usable_plugins(creators)) == has_ln
    assert missing_creators(required_creators(["layernorm_plugin"]), creators) == ([] if has_ln else [("LayerNorm", "1")])
    # (fMHA_V2 / fMHCA are in the 8.6.0 registry of the rig with cuDNN, gputests-h200.log of 2026-12-03; no
    # rewrite of ours claims them, so nothing here depends on their presence.)


@pytest.mark.parametrize("name,fp16,tol", [("skip_layernorm_plugin", False, 1e-4),
                                           ("skip_layernorm_plugin_fp16", True, 3e-2)])
def test_skip_layernorm_synthetic(tmp_path, name, fp16, tol):
    model = _residual_layernorm_model()
    rewritten, sites = apply_plugins(model, [name])
    assert sites[name] == 1
    feeds = _feeds([(1, 7), (4, 33)])
    assert_close(build_and_run(model, feeds, tmp_path, fp16=fp16),
                 build_and_run(rewritten, feeds, tmp_path, fp16=fp16), atol=tol, rtol=tol)


def test_layernorm_plugin_synthetic(tmp_path):
    if missing_creators(required_creators(["layernorm_plugin"]), plugin_creators()):
        pytest.skip("no LayerNorm v1 creator in this TensorRT (removed in 8.6.0); load a library providing it")
    model = _residual_layernorm_model()
    rewritten, sites = apply_plugins(model, ["layernorm_plugin"])
    assert sites["layernorm_plugin"] == 1
    feeds = _feeds([(1, 7), (4, 33)])
    assert_close(build_and_run(model, feeds, tmp_path), build_and_run(rewritten, feeds, tmp_path), 1e-4, 1e-4)


@pytest.mark.parametrize("model_name", ["encoder", "decoder"])
def test_skip_layernorm_on_the_models(request, tmp_path, model_name):
    try:
        workloads = request.getfixturevalue("plugin_workloads")
    except Exception as exc:  # the exports need torch, which the TensorRT Python may lack
        pytest.skip(f"no model exports here: {type(exc).__name__}: {exc}")
    for wl in workloads:
        base, _ = apply_passes(wl.load("contest", model_name), available_passes(model_name))
        rewritten, sites = apply_plugins(base, ["skip_layernorm_plugin"])
        assert sites["skip_layernorm_plugin"] > 0
        feeds = [wl.make_inputs(model_name, b, t, 51 + i) for i, (b, t) in enumerate(wl.shapes)]
        assert_close(build_and_run(base, feeds, tmp_path), build_and_run(rewritten, feeds, tmp_path),
                     atol=2e-3, rtol=2e-3)


def test_user_plugin_libraries_load():
    """Loads every *.so in $WENET_TRT_PLUGIN_DIR (as the contest harness does) and lists what they add."""
    directory = os.environ.get("WENET_TRT_PLUGIN_DIR")
    if not directory:
        pytest.skip("set WENET_TRT_PLUGIN_DIR to a folder of plugin libraries")
    init_builtin_plugins()
    before = set(plugin_creators())
    load_plugin_libraries(discover_plugin_libraries(directory))
    assert set(plugin_creators()) >= before


# --- our library (plugins/src): WenetLayerNorm and WenetLogSoftmax ------------------------------
OURS_LN, OURS_LSM = "wenet_layernorm_plugin", "wenet_log_softmax_plugin"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wenet_library(tmp_path_factory) -> Path:
    """$WENET_TRT_PLUGIN_LIB, else plugins/build_plugins.sh into a temporary folder; loaded and registered."""
    path = os.environ.get("WENET_TRT_PLUGIN_LIB")
    if not path:
        import tensorrt
        out = tmp_path_factory.mktemp("wenet_plugins")
        env = {**os.environ, "OUT": str(out)}
        trt_dir = Path(tensorrt.__file__).parent   # the pip wheel keeps libnvinfer.so.8 there
        if "TRT_LIB" not in env and list(trt_dir.glob("libnvinfer.so.*")):
            env["TRT_LIB"] = str(trt_dir)
        res = subprocess.run(["bash", str(ROOT / "plugins" / "build_plugins.sh")], env=env, capture_output=True,
                             text=True, timeout=600)
        if res.returncode == 3:
            pytest.skip(f"cannot build our plugin library: {res.stdout.strip()} (or set WENET_TRT_PLUGIN_LIB)")
        assert res.returncode == 0, res.stdout + res.stderr
        path = out / LIBRARY_NAME
    init_builtin_plugins()
    load_plugin_libraries([path])
    assert missing_creators(required_creators([OURS_LN, OURS_LSM]), plugin_creators()) == []
    return Path(path)


def _plugin_model(op: str, inputs: list[str], outputs: list[str], shape, attrs: dict, io) -> onnx.ModelProto:
    """One plugin node alone, graph I/O in `io` (float32/float16): the kernel, as TensorRT runs it."""
    t = TensorProto.FLOAT16 if io == np.float16 else TensorProto.FLOAT
    node = helper.make_node(op, inputs, outputs, domain=PLUGIN_DOMAIN, plugin_version="1", **attrs)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info(x, t, shape) for x in inputs],
                              [helper.make_tensor_value_info(y, t, shape) for y in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(PLUGIN_DOMAIN, 1)])


# FP32 I/O: only the summation order differs from numpy; FP16 I/O: one rounding of the output.
IO_TOL = {np.float32: (2e-5, 2e-5), np.float16: (2e-3, 1e-3)}


@pytest.mark.parametrize("io", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("width", [256, 80, 1024])
def test_wenet_layernorm_kernel(wenet_library, tmp_path, io, width):
    rng = np.random.default_rng(width)
    gamma = (1 + 0.2 * rng.standard_normal(width)).astype(np.float32)
    beta = (0.2 * rng.standard_normal(width)).astype(np.float32)
    attrs = {"epsilon": 1e-5, "residual": 1, "output_sum": 1,
             "gamma": numpy_helper.from_array(gamma), "beta": numpy_helper.from_array(beta)}
    model = _plugin_model("WenetLayerNorm", ["x", "r"], ["y", "s"], ["B", "T", width], attrs, io)
    shapes = [(1, 1), (1, 7), (3, 50), (16, 64)]      # a padded-batch-sized 16 x 64 included
    feeds = [{"x": (2 * rng.standard_normal((b, t, width)) + 0.5).astype(io),
              "r": rng.standard_normal((b, t, width)).astype(io)} for b, t in shapes]
    atol, rtol = IO_TOL[io]
    for f, out in zip(feeds, build_and_run(model, feeds, tmp_path, fp16=io == np.float16)):
        y, s = reference_layernorm(f["x"], gamma, beta, 1e-5, residual=f["r"], io_dtype=io)
        np.testing.assert_allclose(out["y"].astype(np.float32), y.astype(np.float32), atol=atol, rtol=rtol)
        np.testing.assert_allclose(out["s"].astype(np.float32), s.astype(np.float32), atol=atol, rtol=rtol)


@pytest.mark.parametrize("io", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("vocab", [4233, 7, 1])
def test_wenet_log_softmax_kernel(wenet_library, tmp_path, io, vocab):
    rng = np.random.default_rng(vocab)
    model = _plugin_model("WenetLogSoftmax", ["x"], ["y"], ["B", "H", vocab], {}, io)
    feeds = [{"x": (6 * rng.standard_normal((b, h, vocab))).astype(io)} for b, h in [(1, 1), (4, 10), (16, 63)]]
    atol, rtol = IO_TOL[io]
    for f, out in zip(feeds, build_and_run(model, feeds, tmp_path, fp16=io == np.float16)):
        ref = reference_log_softmax(f["x"], io_dtype=io).astype(np.float32)
        np.testing.assert_allclose(out["y"].astype(np.float32), ref, atol=max(atol, 1e-4), rtol=rtol)


@pytest.mark.parametrize("fp16,tol", [(False, 1e-4), (True, 3e-2)])
def test_wenet_layernorm_rewrite_synthetic(wenet_library, tmp_path, fp16, tol):
    model = _residual_layernorm_model()
    rewritten, sites = apply_plugins(model, [OURS_LN])
    assert sites[OURS_LN] == 1
    feeds = _feeds([(1, 7), (4, 33), (16, 64)])
    assert_close(build_and_run(model, feeds, tmp_path, fp16=fp16),
                 build_and_run(rewritten, feeds, tmp_path, fp16=fp16), atol=tol, rtol=tol)


@pytest.mark.parametrize("model_name", ["encoder", "decoder"])
def test_wenet_plugins_on_the_models(request, wenet_library, tmp_path, model_name):
    """All passes, with and without our plugins, FP32: within the contest's limits at every shape (padded batch too)."""
    from scoring.metrics import check, rules
    try:
        workloads = request.getfixturevalue("plugin_workloads")
    except Exception as exc:  # the exports need torch, which the TensorRT Python may lack
        pytest.skip(f"no model exports here: {type(exc).__name__}: {exc}")
    names = [OURS_LN, OURS_LSM] if model_name == "decoder" else [OURS_LN]
    for wl in workloads:
        base, _ = apply_passes(wl.load("contest", model_name), available_passes(model_name))
        rewritten, sites = apply_plugins(base, names)
        assert all(sites.values())
        shapes = list(wl.shapes) + [(16, wl.shapes[-1][1])]
        feeds = [wl.make_inputs(model_name, b, t, 71 + i) for i, (b, t) in enumerate(shapes)]
        for plain, plugged in zip(build_and_run(base, feeds, tmp_path), build_and_run(rewritten, feeds, tmp_path)):
            for rule in rules(model_name):
                a0, r0 = check(plugged[rule.name], plain[rule.name], rule.eps)
                assert r0 < rule.max_rel and (rule.max_abs is None or a0 < rule.max_abs), (rule.name, a0, r0)
