"""Profile-layout and preview-feature dimensions, per harness, and each harness's seeds."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import FixedTrial

from engine.config import BuildConfig
from engine.profiles import layout_profiles
from search.errors import SpaceError
from search.options import SpaceOptions
from search.seeds import labelled_seeds, seed_configs
from search.space import PREVIEW_FEATURES, SearchSpace

PASSES = ["fold_constants", "layernorm", "bool_slice"]


def sampled(space: SearchSpace, n: int, seed: int = 0) -> list[tuple[BuildConfig, dict]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []

    def objective(trial):
        out.append((space.sample(trial), dict(trial.params)))
        return 0.0

    study.optimize(objective, n_trials=n)
    return out


def test_contest_harness_never_samples_more_than_one_profile():
    space = SearchSpace("encoder", PASSES, options=SpaceOptions(harness="contest"))
    for cfg, params in sampled(space, 30):
        cfg.validate()
        assert cfg.layout == "single" and cfg.contest_profile and cfg.batch_buckets is None
        assert len(layout_profiles(cfg)) == 1
        assert "layout.serving" not in params and params["layout.contest"] == "single"
        assert not {"batch_buckets", "frame_buckets", "contest_profile"} & set(params)
        assert space.to_params(cfg) == params


def test_serving_harness_samples_every_layout_and_each_validates(tmp_path):
    space = SearchSpace("decoder", options=SpaceOptions(harness="serving"))
    configs = sampled(space, 60, seed=1)
    assert {cfg.layout for cfg, _ in configs} == {"single", "per_batch", "buckets"}
    assert {cfg.contest_profile for cfg, _ in configs} == {True, False}
    for cfg, params in configs:
        cfg.validate()
        assert "layout.contest" not in params
        assert ("contest_profile" in params) == (cfg.layout != "single")
        if cfg.layout == "per_batch":
            assert cfg.frame_buckets is None and cfg.batch_buckets in ([1, 4, 16], [1, 2, 4, 8, 16], [2, 4, 16])
        if cfg.layout == "buckets":
            assert cfg.frame_buckets in ([64, 256, 1024], [16, 64, 256, 1024], [256, 1024])
        assert space.to_params(cfg) == params
        assert space.sample(FixedTrial(space.to_params(BuildConfig.load(cfg.save(tmp_path / "c.yaml"))))) == cfg
        assert layout_profiles(cfg)                 # the engine has profiles for it


def test_stress_grid_max_batch_keeps_profile_zero():
    """With batch 64 in the grid, the buckets (up to 16) cannot replace profile 0."""
    space = SearchSpace("encoder", options=SpaceOptions(harness="serving", max_batch=64))
    for cfg, params in sampled(space, 40, seed=2):
        cfg.validate()
        assert cfg.max_batch == 64 and cfg.contest_profile and "contest_profile" not in params
        assert space.to_params(cfg) == params


def test_preview_feature_dimensions():
    space = SearchSpace("encoder")
    names = [d.name for d in space.dims if d.name.startswith("preview.")]
    assert names == [f"preview.{n}" for n in PREVIEW_FEATURES] == ["preview.FASTER_DYNAMIC_SHAPES_0805"]
    params = space.to_params(BuildConfig("encoder"))
    assert params["preview.FASTER_DYNAMIC_SHAPES_0805"] == "default"
    for choice, expected in (("default", {}), ("on", {"FASTER_DYNAMIC_SHAPES_0805": True}),
                             ("off", {"FASTER_DYNAMIC_SHAPES_0805": False})):
        cfg = space.sample(FixedTrial({**params, "preview.FASTER_DYNAMIC_SHAPES_0805": choice}))
        assert cfg.preview_features == expected
        assert space.to_params(cfg)["preview.FASTER_DYNAMIC_SHAPES_0805"] == choice


def test_contest_space_refuses_multi_profile_configs():
    space = SearchSpace("encoder", options=SpaceOptions(harness="contest"))
    with pytest.raises(SpaceError, match="layout"):
        space.to_params(BuildConfig("encoder", layout="per_batch", batch_buckets=[1, 4, 16]))


@pytest.mark.parametrize("harness,labels", [
    ("serving", ["baseline", "reference", "all_fp16", "passes_fp32", "mixed", "per_batch", "per_batch_fp16",
                 "per_batch_tf32"]),
    ("contest", ["baseline", "reference", "all_fp16", "passes_fp32", "mixed", "fds_off", "fds_off_tf32"]),
])
def test_seeds_of_each_harness_round_trip(harness, labels):
    space = SearchSpace("encoder", PASSES, options=SpaceOptions(harness=harness, max_opt_level=4))
    seeds = labelled_seeds(space)
    assert [label for label, _ in seeds] == labels
    for _, cfg in seeds:
        assert space.sample(FixedTrial(space.to_params(cfg))) == cfg
    by_label = dict(seeds)
    if harness == "serving":
        pb, pb16, pb32 = by_label["per_batch"], by_label["per_batch_fp16"], by_label["per_batch_tf32"]
        assert (pb.layout, pb.batch_buckets, pb.contest_profile, pb.fp16) == ("per_batch", [1, 4, 16], True, False)
        assert (pb16.layout, pb16.batch_buckets, pb16.fp16) == ("per_batch", [1, 4, 16], True)
        assert (pb32.layout, pb32.batch_buckets, pb32.contest_profile, pb32.fp16, pb32.tf32) == \
            ("per_batch", [1, 4, 16], True, False, True)
        assert not pb.tf32 and not pb16.tf32             # the FP32 and FP16 layout seeds keep TF32 off
    else:
        fds = by_label["fds_off"]
        # the measured fastest Good contest engine: reference rewrites + bool_slice, preview off
        assert fds.layout == "single" and fds.passes == ["fold_constants", "layernorm", "bool_slice"] and not fds.fp16
        assert fds.preview_features == {"FASTER_DYNAMIC_SHAPES_0805": False} and not fds.tf32
        fds32 = by_label["fds_off_tf32"]                 # the same engine with TF32 on
        assert fds32.layout == "single" and fds32.passes == fds.passes
        assert fds32.preview_features == fds.preview_features and fds32.tf32 and not fds32.fp16


def test_fds_off_seed_without_the_bool_slice_pass():
    """A registry without bool_slice: the seed keeps its preview setting and the reference rewrites."""
    seeds = seed_configs("decoder", ["fold_constants", "merge_qkv"], [], harness="contest")
    (fds,) = [cfg for label, cfg in seeds if label == "fds_off"]
    (fds32,) = [cfg for label, cfg in seeds if label == "fds_off_tf32"]
    assert fds.passes == ["fold_constants"] and fds.preview_features == {"FASTER_DYNAMIC_SHAPES_0805": False}
    assert fds32.passes == ["fold_constants"] and fds32.preview_features == fds.preview_features and fds32.tf32
    space = SearchSpace("decoder", ["fold_constants", "merge_qkv"], options=SpaceOptions(harness="contest"))
    assert {"fds_off", "fds_off_tf32"} <= set(dict(labelled_seeds(space)))
