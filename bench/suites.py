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


VARIANTS = (
    Variant("per_batch fp16", {"layout": "per_batch", "fp16": True, "contest_profile": False},
            ("serving", "serving-nographs"), 100),
    Variant("buckets fp32", {"layout": "buckets", "frame_buckets": [256, 1024], "contest_profile": False},
            ("serving", "serving-nographs"), 80),
    Variant("per_batch fp32", {"layout": "per_batch"}, ("serving", "serving-nographs", "contest"), 70),
    Variant("naive fp16", {"fp16": True}, ("contest", "serving"), 50),
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
# suite -> (variants, the label each model's ratios are taken against)
SUITES = {"layouts": (VARIANTS, {"encoder": "naive fp32 contest", "decoder": "naive fp32 contest"}),
          "plugins": (PLUGIN_VARIANTS, {"encoder": "fds_off fp32 contest", "decoder": "passes fp32 contest"})}
