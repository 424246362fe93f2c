"""Planned trials: fixed config sets enqueued into a study, run by `tune` like any trial.

An ablation or a sensitivity sweep is a list of configs whose results we want side
by side. Enqueuing them (label in user attr "plan") reuses everything a sampled
trial has: isolated worker, storage, artifacts, dashboard, and the sampler learns
from them too. `tune --trials N` runs WAITING trials first.

- ablation:     for FP32 and FP16: no rewrite, each pass alone, each plugin alone,
                every pass together.
- sensitivity:  everything FP16 ("fp16/all"), then for each layer group the same
                with that one group pinned FP32 ("fp32:<group>"), as polygraphy's
                `debug precision` does one layer at a time.
- bisect, bisect_reverse: the first (last) N groups in graph order FP32, N = 1, 2, 4 ... all.
- rules:        FP32 for norms, softmax, the decoder's scoring, attention (cumulative), obey
                and prefer; INT8 variants with --allow-int8. Both: search/precision_strategies.py.
`predict_mixed` reads a finished sensitivity sweep and proposes the cheapest set
of FP32 groups predicted to bring every case within its thresholds.

A plan starts from a base config (`PlanBase`, `--base`: a seed of the harness, `trial:N`
or a YAML file) whose layout, passes and knobs it keeps; its labels then end in
"@<base name>", so plans over several bases live side by side in one study.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.config import BuildConfig, ConfigError
from search.errors import SearchError, SpaceError
from search.precision_strategies import (DIRECTIONS, bisect_configs, bisect_next, bisect_report, fp32_pins,
                                         group_order, labelled, rules_configs, rules_report, split_label,
                                         with_precision)
from search.space import SearchSpace

PLANS = ("ablation", "sensitivity", "bisect", "bisect_reverse", "rules", "references")


@dataclass(frozen=True)
class PlanBase:
    """The config a plan starts from; `name` suffixes its labels ('' for BuildConfig's defaults)."""
    name: str = ""
    config: BuildConfig | None = None


def base_name(text: str | None) -> str:
    """The label suffix of a --base: 'per_batch', 'trial:12' -> 'trial12', 'cfg/mine.yaml' -> 'mine'."""
    if not text:
        return ""
    if text.startswith("trial:"):
        return "trial" + text.split(":", 1)[1]
    return Path(text).stem if text.endswith((".yaml", ".yml")) else text


def resolve_base(space: SearchSpace, text: str | None, study: optuna.Study | None = None) -> PlanBase:
    """--base: a seed label of the space's harness (per_batch, fds_off, ...), trial:N, or a YAML file."""
    if not text:
        return PlanBase()
    from search.results import config_of
    from search.seeds import labelled_seeds

    if text.startswith("trial:"):
        if study is None:
            raise SearchError("--base trial:N needs the study")
        try:
            trial = study.get_trials(deepcopy=False)[int(text.split(":", 1)[1])]
        except (ValueError, IndexError):
            raise SearchError(f"--base {text}: no such trial in {study.study_name}") from None
        return PlanBase(base_name(text), config_of(trial))
    if text.endswith((".yaml", ".yml")):
        try:
            return PlanBase(base_name(text), BuildConfig.load(text))
        except (OSError, ConfigError) as exc:
            raise SearchError(f"--base {text}: {exc}") from None
    seeds = dict(labelled_seeds(space))
    if text not in seeds:
        raise SearchError(f"--base {text!r}: not a seed of the {space.options.harness} space "
                          f"({', '.join(seeds)}), trial:N or a .yaml file")
    return PlanBase(text, seeds[text])


def _from_base(space: SearchSpace, base: PlanBase, **fields: Any) -> BuildConfig:
    d = (base.config or BuildConfig(space.model)).to_dict()
    d.update(layer_precision={}, fp16=False, int8=False, passes=[], plugins=[], max_batch=space.options.max_batch,
             opt_level=min(d["opt_level"], space.options.max_opt_level))
    d.update(fields)
    return BuildConfig.from_dict(d)


def ablation_configs(space: SearchSpace, base: PlanBase = PlanBase()) -> list[tuple[str, BuildConfig]]:
    out: list[tuple[str, BuildConfig]] = []
    for prec in ("fp32", "fp16"):
        fp16 = prec == "fp16"
        out.append((f"ablation/{prec}/none", _from_base(space, base, fp16=fp16)))
        for name in space.passes:
            out.append((f"ablation/{prec}/pass:{name}", _from_base(space, base, passes=[name], fp16=fp16)))
        for name in space.plugins:
            if name.endswith("_fp16") and not fp16:
                continue            # FP16-I/O plugin variants need an FP16 build
            out.append((f"ablation/{prec}/plugin:{name}", _from_base(space, base, plugins=[name], fp16=fp16)))
        if len(space.passes) > 1:
            out.append((f"ablation/{prec}/all_passes", _from_base(space, base, passes=list(space.passes), fp16=fp16)))
    return [(labelled(label, base.name), cfg) for label, cfg in out]


def _pinned(space: SearchSpace, fp32: tuple[str, ...] = (), base: PlanBase = PlanBase()) -> BuildConfig:
    return with_precision(space, base.config, fp32_pins(space, fp32))


def sensitivity_configs(space: SearchSpace, base: PlanBase = PlanBase()) -> list[tuple[str, BuildConfig]]:
    out = [("sensitivity/fp16/all", _pinned(space, base=base))]
    out += [(f"sensitivity/fp32:{g}", _pinned(space, (g,), base)) for g in space.groups]
    return [(labelled(label, base.name), cfg) for label, cfg in out]


def reference_configs(space: SearchSpace, base: PlanBase = PlanBase()) -> list[tuple[str, BuildConfig]]:
    """The base's FP32-class twins: everything as the base (layout, buckets, passes, builder options) but no
    FP16, no INT8 and no pins, once strict FP32 and once with TF32, the engines a mix's speed-up is measured
    against on its own layout (FP16-I/O plugin variants need an FP16 build, so the twins leave them out)."""
    d = (base.config or BuildConfig(space.model)).to_dict()
    d.update(fp16=False, int8=False, layer_precision={}, precision_constraints=BuildConfig.precision_constraints,
             plugins=[p for p in d["plugins"] if not p.endswith("_fp16")],
             opt_level=min(d["opt_level"], space.options.max_opt_level))
    return [(labelled(f"references/{name}", base.name), BuildConfig.from_dict({**d, "tf32": tf32}))
            for name, tf32 in (("fp32", False), ("tf32", True))]


def plan_configs(space: SearchSpace, plan: str, base: PlanBase = PlanBase(),
                 onnx: Path | None = None) -> list[tuple[str, BuildConfig]]:
    """The (label, config) pairs of a plan; `onnx` (the exported model) orders the groups for bisect."""
    if plan == "ablation":
        return ablation_configs(space, base)
    if plan == "sensitivity":
        return sensitivity_configs(space, base)
    if plan in ("bisect", "bisect_reverse"):
        order = group_order(space.model, space.groups, onnx)
        return bisect_configs(space, "first" if plan == "bisect" else "last", order, base.config, base.name or None)
    if plan == "rules":
        return rules_configs(space, base.config, base.name or None)
    if plan == "references":
        return reference_configs(space, base)
    raise SearchError(f"unknown plan {plan!r}; expected one of {', '.join(PLANS)}")


def enqueue_configs(study: optuna.Study, space: SearchSpace, configs: list[tuple[str, BuildConfig]]) -> list[str]:
    """Enqueue the configs whose label the study lacks; returns the labels enqueued.

    `int8: False` is fixed even where the space has no int8 dimension, so a plan made
    without --allow-int8 stays FP16 when `tune --allow-int8` runs it.
    """
    have = {t.user_attrs.get("plan") for t in study.get_trials(deepcopy=False)}
    added = []
    for label, cfg in configs:
        if label in have:
            continue
        try:
            params = space.to_params(cfg)
        except SpaceError as exc:
            hint = " (int8 configs need --allow-int8)" if cfg.uses_int8 else ""
            raise SearchError(f"plan config {label}: {exc}{hint}") from None
        params.setdefault("int8", cfg.int8)
        study.enqueue_trial(params, user_attrs={"plan": label}, skip_if_exists=False)
        added.append(label)
        have.add(label)
    return added


def enqueue_plan(study: optuna.Study, space: SearchSpace, plan: str, base: PlanBase = PlanBase(),
                 onnx: Path | None = None) -> list[str]:
    """Enqueue the plan's configs not already in the study (by label); returns the labels enqueued."""
    return enqueue_configs(study, space, plan_configs(space, plan, base, onnx))


# --- reading a sensitivity sweep ----------------------------------------------------------
@dataclass
class GroupEffect:
    group: str
    worst_ratio: float        # worst metric/threshold over every case with only this group in FP32
    gain: float               # all-FP16 worst ratio minus the above: error removed by this group
    latency_ms: float         # summed latency with only this group in FP32
    cost_ms: float            # latency_ms minus the all-FP16 latency
    # batch -> worst ratio over that batch's cases: in a per_batch layout each batch bucket is its own profile
    # with its own tactics, and one group's effect can differ in sign between them (measured on the H100)
    by_batch: dict[int, float] = field(default_factory=dict)
    # parameters other than the precision pins in which its trial differs from the all-FP16 one: then the
    # gain is not the group's alone (2026-12-07: plans queued without --plugin-lib ran sampled plugins)
    differs: tuple[str, ...] = ()


def differing_params(a: FrozenTrial, b: FrozenTrial) -> tuple[str, ...]:
    """The non-precision parameters two trials do not share (a plan's pin moves only `prec.*`)."""
    names = set(a.params) | set(b.params)
    return tuple(sorted(k for k in names if not k.startswith("prec.") and a.params.get(k) != b.params.get(k)))


def _worst(t: FrozenTrial) -> float:
    return max(c["worst_ratio"] for c in t.user_attrs["cases"])


def batch_worst(cases: list[dict[str, Any]]) -> dict[int, float]:
    """batch -> the worst metric/threshold ratio over that batch's measured cases (a trial's `cases` attr)."""
    out: dict[int, float] = {}
    for c in cases:
        if c.get("worst_ratio") is not None:
            out[int(c["batch"])] = max(out.get(int(c["batch"]), 0.0), float(c["worst_ratio"]))
    return out


def worst_by_batch(t: FrozenTrial) -> dict[int, float]:
    return batch_worst(t.user_attrs["cases"])


def _latency(t: FrozenTrial) -> float:
    return sum(c["latency_ms"] for c in t.user_attrs["cases"])


def sensitivity(study: optuna.Study, base_name: str = "") -> tuple[FrozenTrial, list[GroupEffect]]:
    """The all-FP16 trial and each group's effect, most error removed first (plans over base `base_name`)."""
    done = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        name, on = split_label(t.user_attrs.get("plan", ""))
        if name.startswith("sensitivity/") and on == base_name and t.user_attrs.get("cases"):
            done[name] = t
    base = done.get("sensitivity/fp16/all")
    if base is None:
        raise SearchError(f"study {study.study_name!r} has no finished {labelled('sensitivity/fp16/all', base_name)} "
                          "trial (python -m search plan --plan sensitivity, then tune)")
    effects = []
    for label, t in done.items():
        if label.startswith("sensitivity/fp32:"):
            worst = _worst(t)
            effects.append(GroupEffect(label.split(":", 1)[1], worst, _worst(base) - worst, _latency(t),
                                       _latency(t) - _latency(base), worst_by_batch(t), differing_params(base, t)))
    effects.sort(key=lambda e: (-e.gain, e.cost_ms))
    return base, effects


def predict_mixed(space: SearchSpace, base: FrozenTrial, effects: list[GroupEffect],
                  margin: float = 0.9, plan_base: PlanBase = PlanBase()) -> tuple[BuildConfig, float, list[str]]:
    """Cheapest FP32 set predicted feasible, assuming the groups' error reductions add up per batch size.

    Per batch (each its own profile in a per_batch layout), a group's gain is the all-FP16 worst ratio
    minus its own there, and can be negative. Groups are taken greedily by how much they cut the predicted
    excess over `margin` (summed over the batches) per millisecond of cost, until no batch is predicted
    above `margin` (a safety factor: the additive model is optimistic when errors compound) or no group
    cuts it. A group whose trial differs from the all-FP16 one in more than its pin is not taken (its
    measured gain may belong to the other difference). Returns (config, predicted worst ratio over the
    batches, FP32 groups).
    """
    fp16 = worst_by_batch(base)
    gains = {e.group: {b: fp16[b] - e.by_batch[b] for b in fp16 if b in e.by_batch} for e in effects}

    def excess(pred: dict[int, float]) -> float:
        return sum(max(0.0, v - margin) for v in pred.values())

    def pinned(pred: dict[int, float], e: GroupEffect) -> dict[int, float]:
        return {b: v - gains[e.group].get(b, 0.0) for b, v in pred.items()}

    predicted, chosen, left = dict(fp16), [], [e for e in effects if not e.differs]
    while excess(predicted) > 0 and left:
        cut = {e.group: excess(predicted) - excess(pinned(predicted, e)) for e in left}
        best = max(left, key=lambda e: (cut[e.group] / max(e.cost_ms, 1e-3), -e.cost_ms))
        if cut[best.group] <= 0:
            break
        chosen.append(best.group)
        predicted = pinned(predicted, best)
        left.remove(best)
    return _pinned(space, tuple(chosen), plan_base), max(predicted.values()), chosen


def groups_worth_a_dimension(base: FrozenTrial, effects: list[GroupEffect], min_gain: float = 0.01) -> list[str]:
    """The groups whose FP32 pin removed at least `min_gain` of the worst ratio at some batch size, in the
    sweep's order: the `--precision-groups` that keep TPE off the pins that only cost time. A group whose
    sweep trial did not finish (its pin failed to build) has no effect and is left out, and so is one whose
    trial differs from the all-FP16 one in more than its pin (its gain may be the other difference's)."""
    fp16 = worst_by_batch(base)
    return [e.group for e in effects if not e.differs
            and any(fp16.get(b, v) - v >= min_gain for b, v in e.by_batch.items())]


def sensitivity_rows(base: FrozenTrial, effects: list[GroupEffect]) -> list[dict[str, Any]]:
    rows = [{"group": "(all fp16)", "worst_ratio": _worst(base), "gain": 0.0, "latency_ms": _latency(base),
             "cost_ms": 0.0, "by_batch": worst_by_batch(base)}]
    rows += [e.__dict__ for e in effects]
    return rows


# --- reading bisect and rules, the engines per precision ------------------------------------
def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}" if x < 1e8 else "inf"


def precision_report(study: optuna.Study, space: SearchSpace, onnx: Path | None, harness: str, *,
                     base_name: str = "", layout: str | None = None,
                     enqueue: bool = False, work_dir: Path | None = None) -> tuple[list[str], list[dict], list[dict]]:
    """(lines to print, bench rows, summary) for one study: bisection ladders, rules seeds, the four engines.

    enqueue: the next midpoint of each ladder that has one (label bisect/<direction>:N).
    work_dir: where the trials' directories are (see precision_rows).
    """
    from search.pareto import precision_rows

    lines = [f"{study.study_name}: precision strategies" + (f" over base {base_name}" if base_name else "")]
    order = group_order(space.model, space.groups, onnx)
    for direction, plan in DIRECTIONS.items():
        rep = bisect_report(study, direction, len(order), base_name)
        if not any(s["n"] < len(order) for s in rep["steps"]):
            continue
        lines.append(f"  {plan}: {len(order)} groups; N pinned FP32 -> worst ratio, sum ms")
        for s in rep["steps"]:
            lat = "pending" if s["trial"] is None else f"{s['latency_ms']:.2f} ms"
            lines.append(f"    N={s['n']:<3} {_ratio(s['worst_ratio']):>8}  {lat:>10}  {'Good' if s['good'] else ''}")
        lines.append(f"    smallest Good N: {rep['smallest_good_n']}; next: {rep['next_n']}")
        if enqueue and rep["next_n"] is not None:
            step = bisect_next(study, space, order, direction, base_name)
            if step is not None:
                added = enqueue_configs(study, space, [step])
                lines.append(f"    enqueued {', '.join(added) or 'nothing (already in the study)'}")
    for r in rules_report(study, base_name):
        lines.append(f"  {r['label']:<44} {_ratio(r['worst_ratio']):>8} {r['latency_ms']:9.2f} ms "
                     f"{'Good' if r['good'] else 'Bad'} (trial {r['trial']})")
    rows, summary = precision_rows(study, harness, layout, work_dir)
    for s in summary:
        speed = ", ".join(f"{s[k]:.2f}x {name}" for k, name in (("speedup_vs_fp32", "FP32"),
                                                                 ("speedup_vs_tf32", "TF32")) if s.get(k))
        lines.append(f"  best {s['precision']:<5} {s['label']:<48} {s['latency_sum_ms']:9.2f} ms "
                     f"worst {_ratio(s['worst_ratio'])} {speed}")
    if not summary:
        lines.append("  no complete trial to compare yet")
    return lines, rows, summary
