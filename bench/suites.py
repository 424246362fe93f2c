"""The engines bench/layouts.py builds and measures: one Variant per configuration, grouped in suites."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FDS = "FASTER_DYNAMIC_SHAPES_0805"
# The 2022 reference solution's rewrites (the seeds' list) plus the decoder's own passes.
DECODER_PASSES = ("decoder_masks", "decoder_scoring", "memory_kv_once")


@dataclass(frozen=True)
class Variant:
    label: str                      # one engine per model; rows are labelled "<label> <harness>"
    fields: dict[str, Any]          # BuildConfig fields besides model (passes resolved per model)
    harnesses: tuple[str, ...]      # "contest", "serving", "serving-nographs"
    cost: int                       # rough relative build time: the scheduler starts the dearest first
    passes: str = ""                # "": none; "reference": REFERENCE_PASSES; "reference+bool_slice"
    models: tuple[str, ...] = ("encoder", "decoder")
    plugins: tuple[str, ...] = ()   # plugin rewrites (need --plugin-lib for ours)
    config: str = ""                # a frozen config (search freeze) built as it is: its model, passes, opt level


VARIANTS = (
    Variant("per_batch fp16", {"layout": "per_batch", "fp16": True, "contest_profile": False},
            ("serving", "serving-nographs"), 100),
    Variant("buckets fp32", {"layout": "buckets", "frame_buckets": [256, 1024], "contest_profile": False},
            ("serving", "serving-nographs"), 80),
    Variant("per_batch fp32", {"layout": "per_batch"}, ("serving", "serving-nographs", "contest"), 70),
    # TF32 (FP32 storage, 10-bit mantissa GEMMs): every fast Good decoder trial of the studies had it on
    Variant("per_batch tf32", {"layout": "per_batch", "tf32": True}, ("serving", "serving-nographs", "contest"), 70),
    Variant("buckets fp16", {"layout": "buckets", "frame_buckets": [256, 1024], "contest_profile": False,
                             "fp16": True}, ("serving", "serving-nographs"), 80),
    Variant("naive fp16", {"fp16": True}, ("contest", "serving"), 50),
    Variant("single+passes fp16", {"fp16": True}, ("contest",), 50, "reference"),
    Variant("single+passes fds_off fp32", {"preview_features": {FDS: False}}, ("contest", "serving"), 40,
            "reference+bool_slice"),
    Variant("single+passes fp32", {}, ("contest",), 35, "reference"),
    Variant("naive fp32", {}, ("contest", "serving"), 30),
)

# The plugins suite (issue 12): each model's fastest Good contest-harness config of the layouts
# suite, with and without our plugins, FP32 and FP16 with the norms (and the decoder's output)
# pinned to FP32, which also pins the plugins' I/O to FP32 (precision constraints obeyed).
LN, LSM = "wenet_layernorm_plugin", "wenet_log_softmax_plugin"
_ENC = {"preview_features": {FDS: False}}
_ENC16 = {**_ENC, "fp16": True, "layer_precision": {"norm": "fp32"}, "precision_constraints": "obey"}
_DEC16 = {"fp16": True, "layer_precision": {"norm": "fp32", "output": "fp32"}, "precision_constraints": "obey"}
PLUGIN_VARIANTS = (
    Variant("fds_off fp16 norm32", _ENC16, ("contest",), 100, "reference+bool_slice", ("encoder",)),
    Variant("fds_off fp16 norm32 +ln", _ENC16, ("contest",), 100, "reference+bool_slice", ("encoder",), (LN,)),
    Variant("fds_off fp32", _ENC, ("contest",), 90, "reference+bool_slice", ("encoder",)),
    Variant("fds_off fp32 +ln", _ENC, ("contest",), 90, "reference+bool_slice", ("encoder",), (LN,)),
    Variant("passes fp16 norm32", _DEC16, ("contest",), 40, "reference", ("decoder",)),
    Variant("passes fp16 norm32 +ln+lsm", _DEC16, ("contest",), 40, "reference", ("decoder",), (LN, LSM)),
    Variant("passes fp32", {}, ("contest",), 30, "reference", ("decoder",)),
    Variant("passes fp32 +ln", {}, ("contest",), 30, "reference", ("decoder",), (LN,)),
    Variant("passes fp32 +lsm", {}, ("contest",), 30, "reference", ("decoder",), (LSM,)),
    Variant("passes fp32 +ln+lsm", {}, ("contest",), 30, "reference", ("decoder",), (LN, LSM)),
)
CONFIG_HARNESSES = ("contest", "serving", "serving-nographs")


def config_variant(spec: str) -> Variant:
    """`LABEL=PATH` of a frozen config -> a Variant measured under every harness; ValueError on bad input
    (a config BuildConfig refuses included, so a bad one fails before any build)."""
    from engine.config import BuildConfig, ConfigError

    label, sep, path = spec.partition("=")
    if not sep or not label.strip() or not path.strip():
        raise ValueError(f"--config {spec!r}: expected LABEL=PATH (a YAML of `search freeze`)")
    try:
        model = BuildConfig.load(path.strip()).model
    except ConfigError as exc:
        raise ValueError(f"--config {spec!r}: {' '.join(str(exc).split())[:300]}") from None
    return Variant(label.strip(), {}, CONFIG_HARNESSES, 60, models=(model,), config=path.strip())


# suite -> (variants, the label each model's ratios are taken against)
SUITES = {"layouts": (VARIANTS, {"encoder": "naive fp32 contest", "decoder": "naive fp32 contest"}),
          "plugins": (PLUGIN_VARIANTS, {"encoder": "fds_off fp32 contest", "decoder": "passes fp32 contest"})}


def summarize(rows: list[dict], baselines: dict[str, str] | None = None) -> list[dict]:
    """Per (model, label): sum of latency, Good count; ratio to the model's baseline row's sum
    (`vs_naive`: the naive fp32 contest sum in the layouts suite, the plugin-free one in plugins)."""
    baselines = baselines or SUITES["layouts"][1]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r.get("latency_ms") is not None:
            groups.setdefault((r["model"], r["label"]), []).append(r)
    naive = {m: sum(r["latency_ms"] for r in rs) for (m, l), rs in groups.items() if l == baselines.get(m)}
    out = []
    for (model, label), rs in sorted(groups.items()):
        total = sum(r["latency_ms"] for r in rs)
        out.append({"model": model, "label": label, "cases": len(rs), "good": sum(bool(r["good"]) for r in rs),
                    "sum_ms": total, "vs_naive": total / naive[model] if naive.get(model) else None})
    return out
