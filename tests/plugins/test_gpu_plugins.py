"""GPU tests: each plugin rewrite built with TensorRT and compared with the engine without it.

Run on the GPU host (`pytest -m gpu tests/plugins`); skipped without TensorRT.
The synthetic tests need only onnx; the model tests need the tiny exports (torch).
"""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from candidates import apply_passes, available_passes
from plugins import apply_plugins, required_creators, usable_plugins
from plugins.library import discover_plugin_libraries, init_builtin_plugins, load_plugin_libraries, \
    missing_creators, plugin_creators
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
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _feeds(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [{x: rng.standard_normal((b, t, E)).astype(np.float32) for x in "ab"} for b, t in shapes]


def test_registry_has_the_creators_the_rewrites_claim():
    init_builtin_plugins()
    creators = plugin_creators()
    pairs = set(creators)
    assert ("CustomSkipLayerNormPluginDynamic", "1") in pairs
    assert "skip_layernorm_plugin" in usable_plugins(creators)
    import tensorrt as trt
    if trt.__version__.startswith("8.6"):
        # removed in 8.6.0 (see plugins/README.md); the layernorm pass replaces it
        assert ("LayerNorm", "1") not in pairs
        assert missing_creators(required_creators(["layernorm_plugin"]), creators) == [("LayerNorm", "1")]
        assert not {"fMHA_V2", "fMHCA"} & {n for n, _ in pairs}


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
