"""BuildReport: what a build did, filled by engine/build.py and the backend (engine/backend.py) together."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from engine.errors import first_line
from engine.precision import Assignment, PrecisionPlan


@dataclass
class BuildReport:
    plan_path: str
    plan_bytes: int
    build_s: float
    model: str
    tensorrt: str
    flags: list[str] = field(default_factory=list)            # BuilderFlags set
    flags_cleared: list[str] = field(default_factory=list)    # BuilderFlags cleared (TF32 off)
    tactic_sources: list[str] | None = None
    workspace_mib: int | None = None
    opt_level: int | None = None
    max_aux_streams: int | None = None
    ignored: dict[str, str] = field(default_factory=dict)     # knob -> why it had no effect
    notes: list[str] = field(default_factory=list)
    layer_precision_requests: int = 0                         # layers given a precision
    layer_precision_counts: dict[str, int] = field(default_factory=dict)
    layer_precision_skipped: dict[str, int] = field(default_factory=dict)
    unmatched_groups: list[str] = field(default_factory=list)
    network_layers: int = 0
    calibration: dict[str, Any] | None = None
    timing_cache: dict[str, Any] | None = None
    layer_info_path: str | None = None
    layout: str = "single"                                    # BuildConfig.describe_layout()
    profiles: list[dict[str, Any]] = field(default_factory=list)   # per profile: role, batch, frames, opt
    preview_features: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def knob_refused(self, knob: str, why: str) -> None:
        """A speed-only knob the backend could not set: said in `ignored`, its report field cleared."""
        self.ignored[knob] = why
        if knob in ("tactic_sources", "workspace_mib", "opt_level", "max_aux_streams"):
            setattr(self, knob, None)
        elif knob.startswith("preview_features."):
            self.preview_features.pop(knob.split(".", 1)[1], None)

    def apply_precision_plan(self, plan: PrecisionPlan, apply: Callable[[Assignment], None]) -> None:
        """Apply each assignment (`apply` sets it on the backend's layer) and count what landed;
        a layer that refuses is counted under `refused: <why>` and the build goes on with the rest."""
        for a in plan.assignments:
            try:
                apply(a)
            except Exception as exc:
                why = f"refused: {first_line(exc)}"
                self.layer_precision_skipped[why] = self.layer_precision_skipped.get(why, 0) + 1
                continue
            self.layer_precision_requests += 1
            self.layer_precision_counts[a.precision] = self.layer_precision_counts.get(a.precision, 0) + 1
        for reason, n in plan.skipped.items():
            self.layer_precision_skipped[reason] = self.layer_precision_skipped.get(reason, 0) + n
        self.unmatched_groups = plan.unmatched_groups
        if plan.unmatched_groups:
            self.ignored["layer_precision"] = f"no layer belongs to group(s) {', '.join(plan.unmatched_groups)}"
