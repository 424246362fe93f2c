"""The known configs every new study is seeded with (enqueued once, labelled in user attr "seed").

Five for both harnesses (naive baseline, the 2022 reference solution's rewrites +
FP16, all-FP16, every pass FP32, every pass FP16 with the error-prone groups FP32),
then each harness's own (`harness_seeds`). `labelled_seeds(space)` keeps those the
space can express: to_params must round-trip each one.
"""
from __future__ import annotations

import logging
from typing import Sequence

import optuna

from engine.config import BuildConfig, baseline
from engine.layer_groups import GROUPS
from workload import registry
from workload.precision_defaults import keep_fp32_groups

from search.errors import SpaceError
from search.locking import study_lock
from search.options import HARNESS_NAMES
from search.rewrites import registered_passes, registered_plugins
from search.space import WORKSPACES_MIB, SearchSpace

log = logging.getLogger("search")

# The 2022 reference solution's encoder rewrites (encoder-surgeonV6.py). The seed uses
# those that the registries offer for the model (for the decoder: the ones that apply).
REFERENCE_REWRITES = ("fold_constants", "layernorm", "encoder_lengths", "attention_mask",
                      "subsampling_conv", "ffn_2d_matmul", "pos_enc_slice")
SEED_LABELS = ("baseline", "reference", "all_fp16", "passes_fp32", "mixed")   # known_configs() order
# each harness's own seeds, after SEED_LABELS (harness_seeds() order)
HARNESS_SEED_LABELS = {"serving": ("per_batch", "per_batch_fp16", "per_batch_tf32"),
                       "contest": ("fds_off", "fds_off_tf32")}


def seed_labels(harness: str) -> tuple[str, ...]:
    """Every seed label of a harness's studies, in enqueue order (what `tune --seeds` may name)."""
    if harness not in HARNESS_SEED_LABELS:
        raise SpaceError(f"harness {harness!r} is not one of {', '.join(HARNESS_NAMES)}")
    return SEED_LABELS + HARNESS_SEED_LABELS[harness]


def check_seed_labels(harness: str, labels: Sequence[str] | None) -> None:
    """tune --seeds names only seeds of this harness (checked before any study is written)."""
    known = seed_labels(harness)
    unknown = [label for label in labels or () if label not in known]
    if unknown:
        raise SpaceError(f"--seeds: {', '.join(unknown)} is not a seed of the {harness} harness "
                         f"(its seeds: {', '.join(known)})")


def known_configs(model: str, passes: Sequence[str] | None = None, plugins: Sequence[str] | None = None,
                  max_opt_level: int = 5, groups: Sequence[str] | None = None) -> list[BuildConfig]:
    """Seeds of every study: [baseline, reference-solution-like, all-FP16, passes-FP32, mixed].

    passes/plugins default to the registries; a reference rewrite that is not
    registered is left out. opt_level is capped at max_opt_level so the seeds
    stay inside a cheap-exploration space.
    """
    passes = registered_passes(model) if passes is None else list(passes)
    plugins = registered_plugins(model) if plugins is None else list(plugins)
    groups = GROUPS[model] if groups is None else groups
    ref = REFERENCE_REWRITES

    base = baseline(model)
    reference = BuildConfig(
        model=model,
        passes=[p for p in passes if p in ref],       # registry order: the order the space applies them
        plugins=[p for p in plugins if p in ref],
        fp16=True, tf32=False, workspace_mib=max(WORKSPACES_MIB))
    all_fp16 = BuildConfig(model=model, fp16=True, tf32=False,
                           layer_precision={g: "fp16" for g in groups}, precision_constraints="prefer")
    # Every pass, FP32: what the rewrites alone buy, numerically safe.
    passes_fp32 = BuildConfig(model=model, passes=list(passes), tf32=False)
    # Every pass, FP16 where error accumulates least: the groups that feed reductions
    # and exponentials (norms, softmax, attention scores, the output log-softmax) stay FP32
    # (the spec's precision.keep_fp32).
    keep_fp32 = keep_fp32_groups(registry.get(model), GROUPS[model])
    mixed = BuildConfig(model=model, passes=list(passes), fp16=True, tf32=False,
                        layer_precision={g: "fp32" for g in groups if g in keep_fp32},
                        precision_constraints="obey")
    seeds = [base, reference, all_fp16, passes_fp32, mixed]
    for cfg in seeds:
        cfg.opt_level = min(cfg.opt_level, max_opt_level)
    return seeds


def harness_seeds(model: str, harness: str, passes: Sequence[str]) -> list[tuple[str, BuildConfig]]:
    """The seeds of one harness's studies.

    serving: the fast layout of the shared research (one profile per batch bucket, batch
    fixed, frames dynamic, profile 0 kept), FP32, FP16 and TF32.
    contest: profile 0 only, TensorRT 8.6's faster-dynamic-shapes preview off, with the
    bool_slice pass when it is registered; FP32 and TF32.
    The TF32 variants: in study-decoder-contest-h200.json every feasible trial under 40 ms had TF32 on
    (FP32 ones: 44-47 ms), and TF32 kept the encoder Good in the shared research.
    """
    if harness == "serving":
        # The spec's search.seed_batch_buckets: the decoder's are 2,4,16 (TensorRT 8.6 is wrong on a
        # batch-1-fixed profile, diag-decoder-batch1-h200.json: its batch 1 is padded to 2 instead).
        buckets = list(registry.get(model).search.seed_batch_buckets)
        per_batch = BuildConfig(model=model, layout="per_batch", batch_buckets=buckets, contest_profile=True)
        per_batch_fp16 = BuildConfig(model=model, layout="per_batch", batch_buckets=buckets,
                                     contest_profile=True, fp16=True)
        per_batch_tf32 = BuildConfig(model=model, layout="per_batch", batch_buckets=buckets,
                                     contest_profile=True, tf32=True)
        return list(zip(HARNESS_SEED_LABELS[harness], (per_batch, per_batch_fp16, per_batch_tf32)))
    if harness == "contest":
        # The fastest Good contest-harness encoder of layouts-h200.json: the reference rewrites plus
        # bool_slice, with the preview off (0.30x the naive engine).
        fds_off = BuildConfig(model=model, passes=[p for p in passes if p in REFERENCE_REWRITES or p == "bool_slice"],
                              preview_features={"FASTER_DYNAMIC_SHAPES_0805": False})
        fds_off_tf32 = BuildConfig(model=model, passes=list(fds_off.passes), tf32=True,
                                   preview_features={"FASTER_DYNAMIC_SHAPES_0805": False})
        return list(zip(HARNESS_SEED_LABELS[harness], (fds_off, fds_off_tf32)))
    raise SpaceError(f"harness {harness!r} is not one of {', '.join(HARNESS_NAMES)}")


def seed_configs(model: str, passes: Sequence[str] | None = None, plugins: Sequence[str] | None = None, *,
                 harness: str = "serving", max_opt_level: int = 5, groups: Sequence[str] | None = None,
                 max_batch: int | None = None) -> list[tuple[str, BuildConfig]]:
    """(label, config) of every seed of a harness's study: the five known configs, then the harness's own."""
    passes = registered_passes(model) if passes is None else list(passes)
    seeds = list(zip(SEED_LABELS, known_configs(model, passes, plugins, max_opt_level, groups)))
    seeds += harness_seeds(model, harness, passes)
    for _, cfg in seeds:
        cfg.opt_level = min(cfg.opt_level, max_opt_level)
        cfg.max_batch = max_batch or registry.get(model).batch.max
        cfg.validate()
    return seeds


def labelled_seeds(space: SearchSpace) -> list[tuple[str, BuildConfig]]:
    """(label, config) of the seeds this space can express; a skipped seed keeps no label."""
    out = []
    o = space.options
    for label, cfg in seed_configs(space.model, space.passes, space.plugins, harness=o.harness,
                                   max_opt_level=o.max_opt_level, groups=GROUPS[space.model],
                                   max_batch=o.max_batch):
        try:
            space.to_params(cfg)
        except SpaceError as exc:
            log.warning("seed config %s skipped: %s", label, exc)
            continue
        out.append((label, cfg))
    return out


def seed_study(study: optuna.Study, space: SearchSpace, only: Sequence[str] | None = None) -> int:
    """Enqueue the known configs once per study (a resumed study is not seeded again).

    only: the labels to enqueue (tune --seeds; None: every seed, (): none), in the harness's order.
    Returns how many were enqueued: a seed equal to an earlier one (e.g. every-pass
    FP32 when no pass is registered is the baseline) is enqueued once.
    """
    with study_lock(study):         # N tuners started together on a new study: one seeds it
        if "seeded" in study.user_attrs:
            return 0
        labels, seen = [], set()
        for label, cfg in labelled_seeds(space):
            if only is not None and label not in only:
                continue
            params = space.to_params(cfg)
            key = tuple(sorted(params.items(), key=lambda kv: kv[0]))
            if key in seen:
                continue
            seen.add(key)
            study.enqueue_trial(params, user_attrs={"seed": label}, skip_if_exists=True)
            labels.append(label)
        study.set_user_attr("seeded", labels)
    return len(labels)
