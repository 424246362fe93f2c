"""Two precision strategies beside the sensitivity sweep: bisection over ordered groups, and rules.

Both make ordinary planned trials (search/plans.py registers them: `python -m search
plan --plan bisect|bisect_reverse|rules`), FP16 engines with some layer groups pinned
FP32; a "@<base>" label suffix names the config they start from (`--base`, e.g. the
serving study's per_batch seed), whose layout, passes and builder knobs they keep.

bisect, as polygraphy `debug precision` does for layers: the model's layer groups in
graph order (`group_order`), and an engine with the first N of them FP32 (`bisect`,
from the input; `bisect_reverse`: the last N, from the output). Polygraphy halves an
interval one build at a time; trials here run asynchronously, so the whole ladder
N = 1, 2, 4, ... G (all groups) is enqueued at once (log2 G + 1 trials), and
`bisect_report` reads the smallest Good N, then proposes the midpoint between it and
the largest Bad N below it (`python -m search precision --enqueue` adds it: each round
halves the interval, as polygraphy's bisection does). It assumes, as polygraphy does,
that pinning more groups never adds error. Meant for `--group-granularity block`
(12 encoder blocks x 6 kinds); over the 6-7 plain kinds it is a coarse sweep.

rules, like ModelOpt AutoCast: keep FP32 what overflows FP16's range (max 65504, ~3
significant digits) or accumulates long reductions, everything else FP16. Cumulative
rule sets, cheapest first (the spec's `precision.rules`); one seed per set, each with precision constraints
obey and prefer:
  norms      `norm`: the decomposed LayerNorms (ReduceMean, Sub, Pow, ReduceMean, Add eps,
             Sqrt, Div) square the deviations (|x - mean| > 256 overflows FP16) and sum
             d_model = 256 terms twice; eps = 1e-5 sits near FP16's resolution of the variance.
  softmax    `softmax`: exp of the attention logits and the row sum over up to 256 frames
             (the encoder's T/4) or the hypothesis length (decoder).
  output     `output` (decoder only): the log-softmax over the 4233-token vocabulary and the
             gather + sum of the hypotheses' token log-probs into their scores: a
             4233-term reduction, then a sequence-long sum, judged at r0 2e-4.
  attention  `attention` (encoder) / `self_attention`, `cross_attention` (decoder): the
             attention scores QK^T (dot products over d_k = 64 per head, the logits softmax
             amplifies). The group also holds the Q/K/V/output projections and the relative
             position terms, so this is the costliest rule and comes last (optional).
With --allow-int8, per calibrator (entropy2, minmax): the strictest non-attention rule set and
the strictest set (attention too: on the H200 the decoder's only Good FP16 mix), FP32 as above,
and `INT8_GROUPS` (the matmul-heavy feed-forward and conv modules) int8;
engine/precision.py gives int8 to their MatMul/Conv layers only.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import optuna
from optuna.trial import TrialState

from engine.config import BuildConfig
from engine.layer_groups import GROUPS, group_kind
from engine.precision import resolve_group
from workload import registry
from workload.precision_defaults import graph_order, int8_groups, precision_rules

from search.pareto import trial_latency_ms, trial_worst_ratio
from search.space import SearchSpace

DIRECTIONS = {"first": "bisect", "last": "bisect_reverse"}     # label word -> plan name
ALL_FP32 = "bisect/all_fp32"                                     # N = every group: shared by both ladders
# The graph order of the kinds (used when the ONNX cannot be read), the rule sets and the INT8
# groups are the workload spec's `precision` section (workload/precision_defaults.py; WeNet's:
# conformer macaron FF, self-attention, conv module, FF, final norm; decoder: self-, cross-attention,
# FF; rules norms, softmax, output, attention; INT8 the feed-forward and conv modules).
BEFORE_BLOCKS = ("subsampling", "embedding")
OUTSIDE_BLOCKS = BEFORE_BLOCKS + ("output",)                    # WeNet kinds no block holds
# Our plugins compute these kinds in FP32 outside Myelin's fused graphs. On TensorRT 8.6 an FP32 pin
# inside a Myelin graph buys no FP16 speed (decoder 46.1 ms vs 46.9 FP32), the plugin-backed pin does
# (26.1 ms, all Good: bench/results/plugins-h200.json), so each rule set gets a "+plugins" variant.
PLUGINS_FOR_KIND = {"norm": ("wenet_layernorm_plugin",), "output": ("wenet_log_softmax_plugin",)}   # WeNet's kinds
CALIBRATORS = ("entropy2", "minmax")


def labelled(label: str, base: str | None) -> str:
    """'bisect/first:4' + base 'per_batch' -> 'bisect/first:4@per_batch'."""
    return f"{label}@{base}" if base else label


def split_label(label: str) -> tuple[str, str]:
    """'bisect/first:4@per_batch' -> ('bisect/first:4', 'per_batch'); no base: ''."""
    name, _, base = str(label).partition("@")
    return name, base


def with_precision(space: SearchSpace, base: BuildConfig | None, layer_precision: Mapping[str, str],
                   constraints: str = "obey", *, int8: bool = False, calibrator: str | None = None) -> BuildConfig:
    """`base` (default: BuildConfig's defaults) as an FP16 engine with these pins; opt level capped for the space."""
    fields = (base or BuildConfig(space.model)).to_dict()
    fields.update(fp16=True, int8=int8, layer_precision=dict(layer_precision), precision_constraints=constraints,
                  opt_level=min(fields["opt_level"], space.options.max_opt_level), max_batch=space.options.max_batch)
    if calibrator:
        fields["calibrator"] = calibrator
    return BuildConfig.from_dict(fields)


def fp32_pins(space: SearchSpace, fp32: Sequence[str] = (), kinds: Sequence[str] = ()) -> dict[str, str]:
    """Every group of the space FP16 but the named groups and every group of the named kinds."""
    return {g: "fp32" if g in fp32 or group_kind(g) in kinds else "fp16" for g in space.groups}


# --- bisect -----------------------------------------------------------------------------------
def _node_names(onnx_path: Path | None) -> list[str]:
    if onnx_path is None or not Path(onnx_path).is_file():
        return []
    try:
        import onnx
        return [n.name for n in onnx.load(str(onnx_path), load_external_data=False).graph.node]
    except Exception:                      # not a model (the CPU tests' stand-in): the declared order
        return []


def _declared_order(model: str, groups: Sequence[str]) -> list[str]:
    kinds = graph_order(registry.get(model), GROUPS[model])

    def key(g: str) -> tuple[int, int, int]:
        kind = group_kind(g)
        rank = kinds.index(kind) if kind in kinds else len(kinds)
        if g.startswith("block") and "." in g:
            return (1, int(g[5:].split(".", 1)[0]), rank)
        return (0 if kind in BEFORE_BLOCKS else 2, 0, rank)
    real = [g for g in groups if not (g.startswith("block") and group_kind(g) in OUTSIDE_BLOCKS)]
    return sorted(real, key=key)


def group_order(model: str, groups: Sequence[str], onnx_path: Path | None = None) -> list[str]:
    """The groups from input to output, as their nodes appear in the exported graph (ONNX is topological).

    Block groups (`block3.feed_forward`) sort by the median position of their nodes: the export
    hoists a few nodes (every block's positional projection) to the start. Plain kinds, which
    recur in every block, sort by their first node: the order of the kinds inside a block.
    Groups without a node are left out (pinning them changes nothing). Without a readable
    ONNX: the declared order (the spec's precision.graph_order, blocks in index order, without the block
    groups of kinds that live outside the blocks).
    """
    pins = {g: "fp32" for g in groups}
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(_node_names(onnx_path)):
        hit = resolve_group(model, name, pins)
        if hit is not None:
            positions.setdefault(hit[0], []).append(i)
    if not positions:
        return _declared_order(model, groups)
    if any(g.startswith("block") for g in positions):
        return sorted(positions, key=lambda g: (statistics.median(positions[g]), positions[g][0]))
    return sorted(positions, key=lambda g: positions[g][0])


def ladder(n_groups: int) -> list[int]:
    """1, 2, 4, ... below n_groups, then n_groups."""
    out, n = [], 1
    while n < n_groups:
        out.append(n)
        n *= 2
    return out + [n_groups] if n_groups > 0 else []


def pinned_groups(order: Sequence[str], direction: str, n: int) -> list[str]:
    return list(order[:n]) if direction == "first" else list(order[len(order) - n:]) if n else []


def bisect_label(direction: str, n: int, n_groups: int) -> str:
    return ALL_FP32 if n >= n_groups else f"bisect/{direction}:{n}"


def bisect_configs(space: SearchSpace, direction: str, order: Sequence[str],
                   base: BuildConfig | None = None, base_name: str | None = None) -> list[tuple[str, BuildConfig]]:
    """The whole ladder of one direction ('first' or 'last'), obey constraints."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    return [(labelled(bisect_label(direction, n, len(order)), base_name),
             with_precision(space, base, fp32_pins(space, pinned_groups(order, direction, n))))
            for n in ladder(len(order))]


@dataclass
class BisectStep:
    n: int                       # groups pinned FP32
    label: str
    trial: int | None            # None: not finished yet
    worst_ratio: float | None
    latency_ms: float | None

    @property
    def good(self) -> bool:
        return self.worst_ratio is not None and self.worst_ratio < 1


def bisect_report(study: optuna.Study, direction: str, n_groups: int, base_name: str = "") -> dict[str, Any]:
    """The ladder of one direction as measured: steps by N, the smallest Good N, the next N to try.

    next_n is the midpoint between the smallest Good N and the largest Bad N below it (0:
    all FP16, Bad by assumption), None when they are adjacent or nothing is Good yet.
    """
    steps: dict[int, BisectStep] = {}
    for t in study.get_trials(deepcopy=False):
        name, base = split_label(t.user_attrs.get("plan", ""))
        if base != base_name:
            continue
        if name == ALL_FP32:
            n = n_groups
        elif name.startswith(f"bisect/{direction}:"):
            n = int(name.rsplit(":", 1)[1])
        else:
            continue
        done = t.state == TrialState.COMPLETE and t.user_attrs.get("constraint") is not None
        step = BisectStep(n, t.user_attrs["plan"], t.number if done else None,
                          trial_worst_ratio(t) if done else None, trial_latency_ms(t) if done else None)
        if n not in steps or steps[n].trial is None:
            steps[n] = step
    ordered = [steps[n] for n in sorted(steps)]
    good = [s.n for s in ordered if s.good]
    smallest = min(good) if good else None
    next_n = None
    if smallest is not None:
        below = [s.n for s in ordered if s.trial is not None and not s.good and s.n < smallest]
        lo = max(below, default=0)
        if smallest - lo > 1 and not any(lo < s.n < smallest for s in ordered if s.trial is None):
            next_n = (lo + smallest) // 2
    return {"direction": direction, "groups": n_groups, "steps": [s.__dict__ | {"good": s.good} for s in ordered],
            "smallest_good_n": smallest, "next_n": next_n}


def bisect_next(study: optuna.Study, space: SearchSpace, order: Sequence[str], direction: str,
                base_name: str = "") -> tuple[str, BuildConfig] | None:
    """The next bisection step as (label, config), from a finished ladder trial's config; None when done."""
    from search.results import config_of

    report = bisect_report(study, direction, len(order), base_name)
    if report["next_n"] is None:
        return None
    step = next(s for s in report["steps"] if s["n"] == report["smallest_good_n"])
    base = config_of(study.get_trials(deepcopy=False)[step["trial"]])
    n = report["next_n"]
    return (labelled(bisect_label(direction, n, len(order)), base_name or None),
            with_precision(space, base, fp32_pins(space, pinned_groups(order, direction, n))))


# --- rules ------------------------------------------------------------------------------------
def rule_sets(space: SearchSpace) -> list[tuple[str, tuple[str, ...]]]:
    """Cumulative rule sets ('norms', 'norms+softmax', ...) over the kinds this space has; no repeats."""
    kinds_here = {group_kind(g) for g in space.groups}
    out, names, kinds = [], [], ()
    for name, rule_kinds in precision_rules(registry.get(space.model)):
        present = tuple(k for k in rule_kinds if k in kinds_here)
        if not present:
            continue                               # e.g. the encoder has no output group
        names.append(name)
        kinds += present
        out.append(("+".join(names), kinds))
    return out


def rules_configs(space: SearchSpace, base: BuildConfig | None = None,
                  base_name: str | None = None) -> list[tuple[str, BuildConfig]]:
    """One seed per rule set with obey and with prefer; INT8 variants when the space allows int8."""
    out = []
    sets = rule_sets(space)
    for name, kinds in sets:
        for constraints in ("obey", "prefer"):
            out.append((labelled(f"rules/{name}/{constraints}", base_name),
                        with_precision(space, base, fp32_pins(space, kinds=kinds), constraints)))
        extra = [p for k in kinds for p in PLUGINS_FOR_KIND.get(k, ()) if p in space.plugins]
        if extra:       # obey: the pins also fix the plugins' I/O to FP32
            cfg = with_precision(space, base, fp32_pins(space, kinds=kinds), "obey")
            cfg.plugins = [p for p in space.plugins if p in set(cfg.plugins) | set(extra)]   # the space's order
            out.append((labelled(f"rules/{name}+plugins/obey", base_name), cfg))
    if space.options.allow_int8:
        strict = [s for s in sets if "attention" not in s[0]][-1:]
        strict += [s for s in sets[-1:] if s not in strict]
        for name, kinds in strict:
            pins = fp32_pins(space, kinds=kinds)
            int8 = int8_groups(registry.get(space.model), GROUPS[space.model])
            pins.update({g: "int8" for g in space.groups if group_kind(g) in int8})
            for calibrator in CALIBRATORS:
                out.append((labelled(f"rules/int8:{name}/{calibrator}", base_name),
                            with_precision(space, base, pins, int8=True, calibrator=calibrator)))
    return out


def rules_report(study: optuna.Study, base_name: str = "") -> list[dict[str, Any]]:
    """Every finished rules seed of this base: label, trial, worst ratio, latency, Good, cheapest first."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        name, base = split_label(t.user_attrs.get("plan", ""))
        if name.startswith("rules/") and base == base_name and t.user_attrs.get("constraint") is not None:
            worst = trial_worst_ratio(t)
            rows.append({"label": t.user_attrs["plan"], "trial": t.number, "worst_ratio": worst,
                         "latency_ms": trial_latency_ms(t), "good": worst < 1})
    return sorted(rows, key=lambda r: (not r["good"], r["latency_ms"] if math.isfinite(r["latency_ms"]) else math.inf))
