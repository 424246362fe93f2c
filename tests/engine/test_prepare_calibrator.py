"""prepare_onnx's cache and the calibration set's checks (CPU)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.calibrator import CalibrationSet, calibration_cache_name
from engine.config import BuildConfig
from engine.errors import CalibrationError, PrepareError
from engine.prepare import cache_key, prepare_onnx, rewrite_code_hash


def test_no_rewrites_builds_the_source_itself(tiny_onnx, tmp_path):
    prep = prepare_onnx(tiny_onnx, BuildConfig("encoder", fp16=True), tmp_path / "cache")
    assert prep.path == tiny_onnx and prep.sites == {} and not (tmp_path / "cache").exists()


def test_rewrites_are_cached_by_source_and_pass_list(tiny_onnx, tmp_path):
    import onnx
    cfg = BuildConfig("encoder", passes=["layernorm"])
    first = prepare_onnx(tiny_onnx, cfg, tmp_path / "cache")
    assert first.sites == {"layernorm": 1} and not first.cached and first.path.parent == tmp_path / "cache"
    assert any(n.op_type == "LayerNormalization" for n in onnx.load(str(first.path)).graph.node)
    meta = json.loads(first.path.with_suffix(".json").read_text())
    assert meta["passes"] == ["layernorm"] and meta["sites"] == {"layernorm": 1}
    again = prepare_onnx(tiny_onnx, BuildConfig("encoder", passes=["layernorm"], opt_level=1), tmp_path / "cache")
    assert again.cached and again.path == first.path and again.sites == first.sites
    assert cache_key("h", ["a", "b"], []) != cache_key("h", ["b", "a"], [])
    assert cache_key("h", ["a"], [], "code 1") != cache_key("h", ["a"], [], "code 2")
    assert "candidates/passes/layernorm.py" in meta["code_files"] and meta["code_hash"]


EDITABLE_PASS = '''
from candidates.framework import register_pass
from candidates.graph import scope_of  # noqa: F401  (a helper module: its code counts too)


@register_pass("editable_noop", models=("encoder",))
def editable_noop(graph):
    """Rewrites nothing (a pass whose source the test edits)."""
    return 0
'''


@pytest.fixture
def editable_pass(tmp_path, monkeypatch):
    """A pass registered from a file under tmp_path (the registry is restored afterwards)."""
    import importlib.util

    import candidates.framework as fw
    import candidates  # noqa: F401  (the package registers every pass)
    monkeypatch.setattr(fw, "_REGISTRY", dict(fw._REGISTRY))
    path = tmp_path / "editable_pass.py"
    path.write_text(EDITABLE_PASS)
    spec = importlib.util.spec_from_file_location("editable_pass", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    return path


def test_an_edited_pass_does_not_reuse_its_old_graph(tiny_onnx, tmp_path, editable_pass):
    cfg = BuildConfig("encoder", passes=["editable_noop"])
    first = prepare_onnx(tiny_onnx, cfg, tmp_path / "cache")
    assert not first.cached and prepare_onnx(tiny_onnx, cfg, tmp_path / "cache").cached
    files = json.loads(first.path.with_suffix(".json").read_text())["code_files"]
    assert str(editable_pass) in files and "candidates/framework.py" in files and "candidates/graph.py" in files
    editable_pass.write_text(EDITABLE_PASS.replace("Rewrites nothing", "Still rewrites nothing"))
    edited = prepare_onnx(tiny_onnx, cfg, tmp_path / "cache")
    assert not edited.cached and edited.key != first.key


def test_rewrite_code_covers_the_modules_a_pass_imports():
    _, files = rewrite_code_hash(["subsampling_conv"], [])
    assert {"candidates/passes/subsampling_conv.py", "candidates/dims.py", "candidates/framework.py",
            "candidates/graph.py"} <= set(files)
    assert not any(f.endswith("__init__.py") for f in files)          # not every other pass
    assert "candidates/passes/layernorm.py" not in files
    _, with_plugin = rewrite_code_hash([], ["skip_layernorm_plugin"])
    assert {"plugins/rewrites.py", "plugins/skip_layernorm.py"} <= set(with_plugin)
    assert rewrite_code_hash(["layernorm"], [])[0] != rewrite_code_hash(["fold_constants"], [])[0]


def test_missing_source_is_a_prepare_error(tmp_path):
    with pytest.raises(PrepareError, match="does not exist"):
        prepare_onnx(tmp_path / "nope.onnx", BuildConfig("encoder"), tmp_path)


def test_unknown_pass_names_the_known_ones(tiny_onnx, tmp_path):
    from candidates import PassError
    with pytest.raises(PassError, match="unknown pass"):
        prepare_onnx(tiny_onnx, BuildConfig("encoder", passes=["no_such_pass"]), tmp_path)


def _batches(n=3, b=2, t=16):
    rng = np.random.default_rng(0)
    return [{"speech": rng.standard_normal((b, t, 80)), "speech_lengths": np.full(b, t, np.int64)} for _ in range(n)]


def test_calibration_set_casts_and_sizes():
    cs = CalibrationSet(_batches(), {"speech": np.float32, "speech_lengths": np.int32})
    assert len(cs) == 3 and cs.shapes == {"speech": (2, 16, 80), "speech_lengths": (2,)}
    assert cs.batches[0]["speech"].dtype == np.float32 and cs.batches[0]["speech_lengths"].dtype == np.int32
    assert cs.nbytes["speech"] == 2 * 16 * 80 * 4


def test_calibration_set_rejects_missing_inputs_and_ragged_shapes():
    with pytest.raises(CalibrationError, match=r"lacks input\(s\) \['ctc_score'\]"):
        CalibrationSet(_batches(), {"speech": np.float32, "speech_lengths": np.int32, "ctc_score": np.float32})
    ragged = _batches(1) + _batches(1, t=32)
    with pytest.raises(CalibrationError, match="one shape"):
        CalibrationSet(ragged, {"speech": np.float32, "speech_lengths": np.int32})
    with pytest.raises(CalibrationError, match="no batch"):
        CalibrationSet([], {"speech": np.float32})


def test_calibration_npz_round_trip_and_cache_name(tmp_path):
    path = tmp_path / "calibration-encoder.npz"
    np.savez(path, **{f"{k}__{i}": v for i, b in enumerate(_batches()) for k, v in b.items()})
    cs = CalibrationSet.from_npz(path, {"speech": np.float32, "speech_lengths": np.int32})
    assert len(cs) == 3
    (tmp_path / "m.onnx").write_bytes(b"graph one")
    name = calibration_cache_name(tmp_path / "m.onnx", "minmax", path)
    assert name.parent == tmp_path and name.name.startswith("m.minmax.") and name.suffix == ".calib"
    (tmp_path / "m.onnx").write_bytes(b"graph two")      # re-exported weights, same file name: new scales
    assert calibration_cache_name(tmp_path / "m.onnx", "minmax", path) != name
    with pytest.raises(CalibrationError, match="does not exist"):
        CalibrationSet.from_npz(tmp_path / "none.npz", {})
    np.savez(tmp_path / "bad.npz", speech=np.zeros(1))
    with pytest.raises(CalibrationError, match="not <input>__<i>"):
        CalibrationSet.from_npz(tmp_path / "bad.npz", {"speech": np.float32})
