"""The engine cache (engine/plan_cache.py): what its key covers, and the size-capped store."""
from __future__ import annotations

import itertools
import json
import os

import pytest

import engine.plan_cache as pc
from engine.config import BuildConfig
from engine.plan_cache import PlanCache, PlanKeyError, builder_code_hash, plan_key


@pytest.fixture
def files(tmp_path):
    """Stand-ins for the hashed inputs: source/prepared ONNX, two plugin libraries, calibration data."""
    names = {"src": b"source onnx", "prep": b"prepared onnx", "lib_a": b"\x7fELF a", "lib_b": b"\x7fELF b",
             "calib": b"calibration"}
    out = {}
    for name, data in names.items():
        out[name] = tmp_path / name
        out[name].write_bytes(data)
    return out


def key(files, config=None, **over):
    kw = dict(tensorrt_version="8.6.0", gpu="NVIDIA H200", plugin_libs=[files["lib_a"]], calibration=None)
    kw.update(over)
    return plan_key(files["src"], files["prep"], config or BuildConfig("encoder"), **kw)


def test_an_equal_build_has_an_equal_key(files):
    a, b = key(files), key(files)
    assert a.key == b.key and len(a.key) == 32 and a.material == b.material
    assert a.material["config"] == BuildConfig("encoder").to_dict()      # every field, whatever is added later


@pytest.mark.parametrize("change", [
    dict(fp16=True), dict(opt_level=2), dict(workspace_mib=1024), dict(tf32=True), dict(max_aux_streams=1),
    dict(layout="per_batch"), dict(layout="per_batch", contest_profile=False), dict(opt_shape=(4, 256)),
    dict(preview_features={"FASTER_DYNAMIC_SHAPES_0805": False}), dict(layer_precision={"norm": "fp32"}),
    dict(tactic_sources=["CUBLAS"]), dict(passes=["layernorm"]), dict(max_batch=64),
])
def test_a_changed_config_field_misses(files, change):
    assert key(files, BuildConfig("encoder", **change)).key != key(files).key


def test_tensorrt_gpu_plugins_and_onnx_are_in_the_key(files):
    base = key(files).key
    assert key(files, tensorrt_version="10.13.0.35").key != base
    assert key(files, gpu="NVIDIA H100 80GB HBM3").key != base
    assert key(files, plugin_libs=[]).key != base
    assert key(files, plugin_libs=[files["lib_a"], files["lib_b"]]).key != base
    files["lib_a"].write_bytes(b"\x7fELF a, rebuilt")                    # same path, new library
    assert key(files).key != base
    lib_key = key(files).key
    files["prep"].write_bytes(b"prepared by an edited pass")
    assert key(files).key != lib_key
    prep_key = key(files).key
    files["src"].write_bytes(b"re-exported onnx")
    assert key(files).key != prep_key


def test_calibration_data_counts_for_int8_only(files):
    assert key(files, calibration=files["calib"]).key == key(files).key      # fp32: not read
    int8 = BuildConfig("encoder", int8=True)
    before = key(files, int8, calibration=files["calib"]).key
    files["calib"].write_bytes(b"other calibration batches")
    assert key(files, int8, calibration=files["calib"]).key != before


def test_builder_code_is_in_the_key(files, tmp_path, monkeypatch):
    (tmp_path / "build.py").write_text("# v1\n")
    h1 = builder_code_hash(["build.py"], tmp_path)
    (tmp_path / "build.py").write_text("# v3\n")
    assert builder_code_hash(["build.py"], tmp_path) != h1
    base = key(files).key
    monkeypatch.setattr(pc, "builder_code_hash", lambda: "edited engine/build.py")
    assert key(files).key != base
    assert set(pc.BUILDER_MODULES) <= {p.name for p in pc.ENGINE_DIR.glob("*.py")}   # every listed module exists


def test_no_key_without_a_gpu_name_or_a_file(files, tmp_path):
    with pytest.raises(PlanKeyError, match="GPU name is unknown"):
        key(files, gpu="unknown GPU")
    with pytest.raises(PlanKeyError, match="plugin library"):
        key(files, plugin_libs=[tmp_path / "missing.so"])


def test_the_backend_supplies_version_and_gpu(fake):
    assert pc.tensorrt_and_gpu() == ("8.6.0", "Fake GPU H100")


# --- the store ------------------------------------------------------------------------------
def plan(tmp_path, name: str, size: int = 1000):
    path = tmp_path / "built" / f"{name}.plan"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(name.encode()[:1] * size)
    return path


@pytest.fixture
def cache(tmp_path):
    ticks = itertools.count(1)
    return PlanCache(tmp_path / "plans", max_bytes=2500, clock=lambda: float(next(ticks)))


def test_store_then_fetch_links_the_plan(cache, tmp_path):
    assert cache.fetch("k1", tmp_path / "t" / "e.plan") is None
    assert cache.store("k1", plan(tmp_path, "a"), {"build_report": {"layers": 3}, "build_s": 12.5}) is None
    dest = tmp_path / "trial" / "encoder.plan"
    hit = cache.fetch("k1", dest)
    assert hit is not None and hit.meta["build_report"] == {"layers": 3} and hit.meta["hits"] == 1
    assert dest.read_bytes() == b"a" * 1000
    assert os.stat(dest).st_ino == os.stat(cache.plan_path("k1")).st_ino     # a hard link, not a copy
    dest.unlink()                                                            # the trial cleans up ...
    assert cache.lookup("k1") is not None                                    # ... the cache keeps its plan
    assert json.loads(cache.meta_path("k1").read_text())["hits"] == 2


def test_least_recently_used_plans_go_first_past_the_cap(cache, tmp_path):
    cache.store("a", plan(tmp_path, "a"))
    cache.store("b", plan(tmp_path, "b"))
    assert cache.lookup("a") is not None          # a is now more recent than b
    cache.store("c", plan(tmp_path, "c"))          # 3000 bytes > 2500: b goes
    assert {e.key for e in cache.entries()} == {"a", "c"} and cache.total_bytes() == 2000
    assert not cache.plan_path("b").exists() and not cache.meta_path("b").exists()
    cache.store("d", plan(tmp_path, "d"))          # a (used at tick 3) is older than c (stored at tick 4)
    assert {e.key for e in cache.entries()} == {"c", "d"}
    assert cache.lookup("b") is None and cache.lookup("a") is None


def test_a_plan_larger_than_the_cap_is_not_kept(cache, tmp_path):
    cache.store("a", plan(tmp_path, "a"))
    why = cache.store("big", plan(tmp_path, "big", size=3000))
    assert "exceeds the engine cache's cap" in why
    assert cache.lookup("big") is None and cache.lookup("a") is not None      # and nothing was evicted for it


def test_a_damaged_entry_is_a_miss(cache, tmp_path):
    cache.store("a", plan(tmp_path, "a"))
    cache.plan_path("a").write_bytes(b"truncated")
    assert cache.lookup("a") is None
    cache.store("b", plan(tmp_path, "b"))
    cache.meta_path("b").write_text("{not json")
    assert cache.lookup("b") is None


def test_a_zero_cap_turns_the_cache_off(tmp_path):
    off = PlanCache(tmp_path / "plans", max_bytes=0)
    assert not off.enabled and off.store("a", plan(tmp_path, "a")) == "engine cache off"
    assert off.lookup("a") is None and not (tmp_path / "plans").exists()
