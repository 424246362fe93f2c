"""The search space: every sample is a valid BuildConfig, conditional parameters exist
only under their parent, and to_params inverts sample."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import FixedTrial, TrialState

from engine.config import TACTIC_SOURCES, BuildConfig, baseline
from engine.layer_groups import GROUPS
from search.errors import SpaceError
from search.options import SpaceOptions
from search.seeds import known_configs, labelled_seeds
from search.space import AUTO, SearchSpace, canonical, space_groups
from search.storage import make_sampler

PASSES = ["fold_constants", "layernorm", "encoder_lengths", "ffn_2d_matmul", "not_in_reference"]
PLUGINS = ["attention_plugin"]


def check_sample(space: SearchSpace, params: dict, cfg: BuildConfig) -> None:
    """The invariants of one sampled trial (params as Optuna recorded them)."""
    cfg.validate()
    mode = "+".join(f for f in ("fp16", "int8") if params.get(f))
    prec = {k: v for k, v in params.items() if k.startswith("prec.")}
    # per-group precision exists exactly when a lower precision is on, for that mode only
    assert set(prec) == ({f"prec.{mode}.{g}" for g in space.groups} if mode else set())
    pinned = {k.split(".", 2)[2]: v for k, v in prec.items() if v != AUTO}   # prec.<mode>.<group>
    assert cfg.layer_precision == pinned
    assert ("precision_constraints" in params) == bool(pinned)
    assert all(v in ("fp32", "fp16") or (v == "int8" and cfg.int8) for v in cfg.layer_precision.values())
    assert ("calibrator" in params) == bool(params.get("int8"))
    tactic = {k for k in params if k.startswith("tactic.")}
    assert tactic == ({f"tactic.{s}" for s in space.options.tactic_sources}
                      if params["tactic_sources"] == "custom" else set())
    assert (cfg.tactic_sources is None) == (params["tactic_sources"] == "default")
    if cfg.tactic_sources is not None:
        assert cfg.tactic_sources == [s for s in space.options.tactic_sources if params[f"tactic.{s}"]]
    assert cfg.passes == [p for p in space.passes if params[f"pass.{p}"]]
    assert cfg.plugins == [p for p in space.plugins if params[f"plugin.{p}"]]
    assert 0 <= cfg.opt_level <= space.options.max_opt_level
    assert cfg.workspace_mib in (1024, 4096, 16384)
    assert cfg.max_aux_streams in (None, 0, 1, 2)
    assert cfg.opt_shape is None or cfg.opt_shape[0] <= 16
    layout = params[f"layout.{space.options.harness}"]
    assert cfg.layout == layout
    assert ("batch_buckets" in params) == (layout != "single")
    assert ("frame_buckets" in params) == (layout == "buckets")


@pytest.mark.parametrize("model", ["encoder", "decoder"])
@pytest.mark.parametrize("sampler_name", ["random", "tpe"])
@pytest.mark.parametrize("allow_int8", [False, True])
def test_every_sample_is_valid_and_conditional(model, sampler_name, allow_int8):
    space = SearchSpace(model, PASSES, PLUGINS, options=SpaceOptions(allow_int8=allow_int8, max_opt_level=3))
    sampler = optuna.samplers.RandomSampler(seed=3) if sampler_name == "random" else make_sampler(seed=3)
    study = optuna.create_study(sampler=sampler)
    seen_modes = set()

    def objective(trial):
        cfg = space.sample(trial)
        check_sample(space, trial.params, cfg)
        seen_modes.add((cfg.fp16, cfg.int8, bool(cfg.layer_precision), cfg.tactic_sources is None))
        # a deterministic, config-dependent value so TPE has something to model
        return cfg.opt_level + 2 * cfg.fp16 + len(cfg.passes) + len(cfg.layer_precision)

    n = 120 if sampler_name == "random" else 40
    study.optimize(objective, n_trials=n)
    states = [t.state for t in study.trials]
    assert all(s == TrialState.COMPLETE for s in states)
    if sampler_name == "random":   # the conditional branches were all exercised
        assert {m[0] for m in seen_modes} == {False, True}
        assert {m[2] for m in seen_modes} == {False, True}
        assert {m[3] for m in seen_modes} == {False, True}
        if allow_int8:
            assert {m[1] for m in seen_modes} == {False, True}


def test_empty_tactic_set_means_tensorrt_own_kernels():
    """Every source off is a real choice (TensorRT's own kernels), not an invalid sample."""
    space = SearchSpace("decoder")
    params = space.to_params(baseline("decoder"))
    params["tactic_sources"] = "custom"
    params.update({f"tactic.{s}": False for s in TACTIC_SOURCES})
    cfg = space.sample(FixedTrial(params))
    assert cfg.tactic_sources == []
    assert space.to_params(cfg) == params


@pytest.mark.parametrize("options", [SpaceOptions(), SpaceOptions(allow_int8=True),
                                     SpaceOptions(group_granularity="block", num_blocks=3)])
def test_round_trip_sampled_configs(options, tmp_path):
    """sample(FixedTrial(to_params(c))) == c, through YAML too, for many random configs."""
    space = SearchSpace("decoder", PASSES, PLUGINS, options=options)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    configs = []

    def objective(trial):
        cfg = space.sample(trial)
        configs.append((cfg, dict(trial.params)))
        return 0.0

    study.optimize(objective, n_trials=60)
    assert len(configs) > 40
    for cfg, params in configs:
        assert space.to_params(cfg) == params
        assert space.sample(FixedTrial(space.to_params(cfg))) == cfg
        loaded = BuildConfig.load(cfg.save(tmp_path / "c.yaml"))
        assert space.sample(FixedTrial(space.to_params(loaded))) == cfg


def test_enqueued_config_is_what_the_trial_samples():
    space = SearchSpace("encoder", PASSES, PLUGINS)
    target = BuildConfig("encoder", passes=["fold_constants", "ffn_2d_matmul"], plugins=["attention_plugin"],
                         fp16=True, layer_precision={"softmax": "fp32", "norm": "fp16"},
                         precision_constraints="prefer", tactic_sources=["CUBLAS_LT", "CUBLAS"],
                         workspace_mib=16384, opt_level=2, opt_shape=(4, 64), max_aux_streams=0)
    study = optuna.create_study(sampler=make_sampler(seed=0))
    study.enqueue_trial(space.to_params(target))
    got = []
    study.optimize(lambda t: got.append(space.sample(t)) or 0.0, n_trials=1)
    # tactic source order is not meaningful; the space writes them in its own order
    assert got[0].tactic_sources == ["CUBLAS", "CUBLAS_LT"]
    got[0].tactic_sources = target.tactic_sources
    assert got[0] == target


def test_opt_shape_default_is_the_max_shape_and_choices_lie_in_the_judged_grid():
    space = SearchSpace("encoder")
    assert space.to_params(BuildConfig("encoder", opt_shape=(16, 1024)))["opt_shape"] == "max"
    assert space.to_params(BuildConfig("encoder", opt_shape=(4, 64)))["opt_shape"] == "4x64"
    assert space.sample(FixedTrial(space.to_params(baseline("encoder")))).opt_shape is None
    (dim,) = [d for d in space.dims if d.name == "opt_shape"]
    shapes = [tuple(map(int, c.split("x"))) for c in dim.choices if c != "max"]
    assert len(shapes) == 11 and all(b <= 16 for b, _ in shapes)


@pytest.mark.parametrize("config,match", [
    (BuildConfig("encoder", passes=["unknown_pass"]), "passes"),
    (BuildConfig("encoder", passes=["layernorm", "fold_constants"]), "passes"),        # other order
    (BuildConfig("encoder", sparse_weights=True), "sparse_weights"),                   # not sampled
    (BuildConfig("encoder", layer_precision={"norm": "fp32"}), "layer_precision"),     # fp16 off
    (BuildConfig("encoder", fp16=True, layer_precision={"block0.norm": "fp32"}), "layer_precision"),  # kind space
    (BuildConfig("encoder", int8=True), "int8"),                                       # int8 not allowed
    (BuildConfig("encoder", workspace_mib=2048), "workspace_mib"),
    (BuildConfig("encoder", opt_level=5), "opt_level"),                                 # above the cap
    (BuildConfig("encoder", opt_shape=(2, 16)), "opt_shape"),                           # not a grid point
    (BuildConfig("decoder"), "decoder"),
    (BuildConfig("encoder", max_batch=64), "max_batch"),                                # not the run's
    (BuildConfig("encoder", layout="per_batch", batch_buckets=[1, 16]), "batch_buckets"),   # not a choice
    (BuildConfig("encoder", preview_features={"PROFILE_SHARING_0806": True}), "preview_features"),
])
def test_to_params_refuses_what_the_space_cannot_express(config, match):
    space = SearchSpace("encoder", PASSES, options=SpaceOptions(max_opt_level=4))
    with pytest.raises(SpaceError, match=match):
        space.to_params(config)


def test_known_configs():
    seeds = known_configs("encoder", PASSES, PLUGINS, max_opt_level=2)
    base, ref, fp16, passes_fp32, mixed = seeds
    assert base == BuildConfig("encoder", opt_level=2)
    # only registered reference rewrites, in registry order
    assert ref.passes == ["fold_constants", "layernorm", "encoder_lengths", "ffn_2d_matmul"]
    assert ref.fp16 and not ref.tf32 and ref.workspace_mib == 16384 and ref.opt_level == 2
    assert fp16.fp16 and set(fp16.layer_precision) == set(GROUPS["encoder"])
    assert set(fp16.layer_precision.values()) == {"fp16"}
    # every registered pass (reference or not), in registry order, plain FP32 with TF32 off
    assert passes_fp32 == BuildConfig("encoder", passes=PASSES, tf32=False, opt_level=2)
    assert not passes_fp32.fp16 and not passes_fp32.int8 and not passes_fp32.tf32
    assert passes_fp32.layer_precision == {} and passes_fp32.plugins == []
    # every pass, FP16, with the groups feeding reductions/exponentials pinned to FP32 (obeyed)
    assert mixed.passes == PASSES and mixed.plugins == []
    assert mixed.fp16 and not mixed.tf32 and not mixed.int8 and mixed.opt_level == 2
    assert mixed.layer_precision == {"softmax": "fp32", "attention": "fp32", "norm": "fp32"}
    assert mixed.precision_constraints == "obey"
    assert len({repr(canonical(cfg)) for cfg in seeds}) == 5          # five distinct seeds
    space = SearchSpace("encoder", PASSES, PLUGINS, options=SpaceOptions(max_opt_level=2))
    assert [cfg for _, cfg in labelled_seeds(space)][:5] == seeds
    for cfg in seeds:
        assert space.sample(FixedTrial(space.to_params(cfg))) == cfg


def test_known_configs_without_registered_passes():
    seeds = known_configs("decoder", passes=[], plugins=[])
    assert len(seeds) == 5
    ref = seeds[1]
    assert ref.passes == [] and ref.fp16
    assert all(cfg.passes == [] and cfg.plugins == [] for cfg in seeds)


def test_known_configs_mixed_seed_of_the_decoder():
    passes = ["fold_constants", "decoder_masks"]
    *_, passes_fp32, mixed = known_configs("decoder", passes, [])
    assert passes_fp32.passes == passes and not passes_fp32.fp16 and not passes_fp32.tf32
    assert mixed.passes == passes and mixed.fp16 and mixed.precision_constraints == "obey"
    # norms, softmax, both attentions and the output log-softmax stay FP32; the rest is left to TensorRT
    assert mixed.layer_precision == {g: "fp32" for g in
                                     ("softmax", "self_attention", "cross_attention", "norm", "output")}
    assert set(GROUPS["decoder"]) - set(mixed.layer_precision) == {"embedding", "feed_forward"}
    space = SearchSpace("decoder", passes)
    assert [cfg for _, cfg in labelled_seeds(space)][3:5] == [passes_fp32, mixed]
    for cfg in (passes_fp32, mixed):
        assert space.sample(FixedTrial(space.to_params(cfg))) == cfg


def test_block_groups_and_bad_options():
    groups = space_groups("encoder", "block", 2)
    assert "block0.attention" in groups and "block1.norm" in groups and "subsampling" in groups
    assert len(groups) == 3 * len(GROUPS["encoder"])
    with pytest.raises(SpaceError, match="num_blocks"):
        space_groups("encoder", "block")
    with pytest.raises(SpaceError, match="granularity"):
        space_groups("encoder", "layer")
    with pytest.raises(SpaceError, match="model"):
        SearchSpace("joiner")
    with pytest.raises(SpaceError, match="max_opt_level"):
        SearchSpace("encoder", options=SpaceOptions(max_opt_level=6))
    with pytest.raises(SpaceError, match="tactic_sources"):
        SearchSpace("encoder", options=SpaceOptions(tactic_sources=("CUDA",)))
    with pytest.raises(SpaceError, match="repeat"):
        SearchSpace("encoder", passes=["a", "a"])


def test_precision_groups_keep_only_their_dimensions():
    """--precision-groups (a sensitivity sweep's cut): the other groups get no dimension and stay TensorRT's."""
    space = SearchSpace("decoder", options=SpaceOptions(precision_groups=("output", "softmax"), allow_int8=True))
    assert space.groups == ("softmax", "output")                      # the model's order, not the flag's
    prec = [d.name for d in space.dims if d.name.startswith("prec.")]
    assert prec == [f"prec.{m}.{g}" for m in ("fp16", "int8", "fp16+int8") for g in ("softmax", "output")]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        cfg = space.sample(study.ask())
        assert set(cfg.layer_precision) <= {"softmax", "output"}
    with pytest.raises(SpaceError, match="cross_attn not a layer group of decoder"):
        SearchSpace("decoder", options=SpaceOptions(precision_groups=("cross_attn",)))


def test_max_opt_level_caps_sampling():
    space = SearchSpace("decoder", options=SpaceOptions(max_opt_level=1))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    levels = []
    study.optimize(lambda t: levels.append(space.sample(t).opt_level) or 0.0, n_trials=40)
    assert set(levels) == {0, 1}


class _Registry:
    """A backend stand-in with a plugin registry: what engine.backend's load_plugins / plugin_creators say."""

    def __init__(self, creators, missing=False):
        self.creators, self.missing, self.loaded = creators, missing, []

    def load_plugins(self, libs=()):
        if self.missing:
            from engine.errors import TensorRTMissing
            raise TensorRTMissing("cannot import tensorrt (no module named tensorrt)")
        self.loaded += list(libs)

    def plugin_creators(self):
        return list(self.creators)


@pytest.fixture
def registry_backend():
    from engine.backend import set_backend
    previous = []

    def use(backend):
        previous.append(set_backend(backend))
        return backend
    yield use
    if previous:
        set_backend(previous[0])


def test_plugins_without_their_creator_stay_out_of_the_space(registry_backend, caplog):
    """Trials 14-18 of the decoder study: plugin rewrites chosen with no library loaded -> unparsable ONNX."""
    from search.precision_strategies import rules_configs
    from search.rewrites import loadable_plugins, registered_plugins

    every = registered_plugins("decoder")
    builtin = registry_backend(_Registry([("CustomSkipLayerNormPluginDynamic", "1"), ("LayerNorm", "1")]))
    kept = loadable_plugins("decoder", ())
    assert kept == [p for p in every if not p.startswith("wenet_")] and builtin.loaded == []
    assert "wenet_layernorm_plugin" in caplog.text and "--plugin-lib" in caplog.text
    labels = [label for label, _ in rules_configs(SearchSpace("decoder", plugins=kept))]
    assert labels and not any("+plugins" in label for label in labels)

    ours = registry_backend(_Registry([("CustomSkipLayerNormPluginDynamic", "1"), ("LayerNorm", "1"),
                                       ("WenetLayerNorm", "1"), ("WenetLogSoftmax", "1")]))
    assert loadable_plugins("decoder", ("libwenet.so",)) == every and ours.loaded == ["libwenet.so"]
    labels = [label for label, _ in rules_configs(SearchSpace("decoder", plugins=every))]
    assert any("+plugins" in label for label in labels)

    registry_backend(_Registry([], missing=True))       # no TensorRT here: the registry cannot be asked
    assert loadable_plugins("decoder", ()) == every
