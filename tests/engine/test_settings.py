"""BuildConfig -> builder settings on TensorRT 8.6 / 10 / 11 capability sets (no TensorRT needed)."""
from __future__ import annotations

import pytest

from engine.config import TACTIC_SOURCES, BuildConfig
from engine.errors import BuildError
from engine.settings import CONFIG_ATTRS, Capabilities, builder_settings, tactic_source_mask

FLAGS_86 = frozenset({"FP16", "INT8", "TF32", "SPARSE_WEIGHTS", "OBEY_PRECISION_CONSTRAINTS",
                      "PREFER_PRECISION_CONSTRAINTS", "REFIT", "FP8"})
TRT86 = Capabilities(version=(8, 6, 0), builder_flags=FLAGS_86, tactic_sources=TACTIC_SOURCES,
                     memory_pools=frozenset({"WORKSPACE"}), config_attrs=frozenset(CONFIG_ATTRS) - {"progress_monitor"},
                     calibrators=frozenset({"entropy2", "minmax"}), profiling_verbosity=frozenset({"DETAILED"}))
# TensorRT 11: strongly typed networks only (no FP16/INT8 flags, no constraints, no calibrators), two tactic sources.
TRT11 = Capabilities(version=(11, 0, 0), builder_flags=frozenset({"TF32", "SPARSE_WEIGHTS", "REFIT"}),
                     tactic_sources=("EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS"),
                     memory_pools=frozenset({"WORKSPACE"}), config_attrs=frozenset(CONFIG_ATTRS),
                     calibrators=frozenset(), progress_monitor=True, profiling_verbosity=frozenset({"DETAILED"}))
OLD = Capabilities(version=(8, 4, 0), builder_flags=frozenset({"FP16", "INT8"}), tactic_sources=("CUBLAS",),
                   memory_pools=frozenset(), config_attrs=frozenset({"set_flag", "int8_calibrator"}),
                   calibrators=frozenset({"entropy2"}))


def test_baseline_clears_tf32_and_sets_workspace_and_level():
    s = builder_settings(BuildConfig("encoder"), TRT86)
    assert s.flags_on == [] and s.flags_off == ["TF32"]
    assert s.workspace_bytes == 4096 << 20 and s.opt_level == 3 and s.max_aux_streams is None
    assert s.tactic_sources is None and s.detailed_profiling and s.ignored == {} and s.calibrator is None


def test_every_flag_a_config_can_ask_for():
    cfg = BuildConfig("decoder", fp16=True, int8=True, tf32=True, sparse_weights=True, calibrator="minmax",
                      layer_precision={"softmax": "fp32"}, precision_constraints="prefer", max_aux_streams=2,
                      opt_level=5, workspace_mib=64)
    s = builder_settings(cfg, TRT86)
    assert s.flags_on == ["FP16", "INT8", "TF32", "PREFER_PRECISION_CONSTRAINTS", "SPARSE_WEIGHTS"]
    assert s.flags_off == [] and s.calibrator == "minmax"
    assert (s.workspace_bytes, s.opt_level, s.max_aux_streams) == (64 << 20, 5, 2)


def test_group_pinned_to_fp16_turns_on_the_fp16_flag():
    s = builder_settings(BuildConfig("encoder", layer_precision={"feed_forward": "fp16"}), TRT86)
    assert "FP16" in s.flags_on and "OBEY_PRECISION_CONSTRAINTS" in s.flags_on


def test_constraints_none_sets_no_constraint_flag_and_says_so():
    s = builder_settings(BuildConfig("encoder", fp16=True, layer_precision={"norm": "fp32"},
                                     precision_constraints="none"), TRT86)
    assert not any("CONSTRAINTS" in f for f in s.flags_on)
    assert any("may not honour" in n for n in s.notes)


def test_tactic_sources_missing_in_this_tensorrt_are_ignored_with_reason():
    s = builder_settings(BuildConfig("encoder", tactic_sources=["CUBLAS", "JIT_CONVOLUTIONS"]), TRT11)
    assert s.tactic_sources == ["JIT_CONVOLUTIONS"]
    assert "CUBLAS" in s.ignored["tactic_sources"]
    assert tactic_source_mask(["CUBLAS_LT", "CUDNN"], {n: i for i, n in enumerate(TACTIC_SOURCES)}) == 0b110


def test_empty_tactic_list_means_no_external_source():
    assert builder_settings(BuildConfig("encoder", tactic_sources=[]), TRT86).tactic_sources == []


@pytest.mark.parametrize("cfg,match", [
    (BuildConfig("encoder", fp16=True), "FP16"),
    (BuildConfig("encoder", layer_precision={"norm": "fp16"}), "FP16"),
    (BuildConfig("encoder", int8=True), "INT8"),
])
def test_numerics_this_tensorrt_lacks_are_a_build_error(cfg, match):
    with pytest.raises(BuildError, match=match):
        builder_settings(cfg, TRT11)


def test_int8_without_the_calibrator_class_is_a_build_error():
    caps = Capabilities(**{**TRT86.__dict__, "calibrators": frozenset({"entropy2"})})
    with pytest.raises(BuildError, match="IInt8MinMaxCalibrator"):
        builder_settings(BuildConfig("encoder", int8=True, calibrator="minmax"), caps)


def test_speed_knobs_missing_are_ignored_not_fatal():
    cfg = BuildConfig("encoder", opt_level=1, max_aux_streams=1, tactic_sources=["CUBLAS"], sparse_weights=True)
    s = builder_settings(cfg, OLD)
    assert set(s.ignored) == {"opt_level", "max_aux_streams", "tactic_sources", "workspace_mib", "sparse_weights"}
    assert s.opt_level is None and s.workspace_bytes is None and not s.detailed_profiling


def test_capabilities_to_dict_is_plain_json():
    import json
    d = TRT86.to_dict()
    assert json.loads(json.dumps(d))["tactic_sources"] == list(TACTIC_SOURCES)
