"""What the report shows, from the committed bench/results/*.json only (no TensorRT, no GPU, no matplotlib).

`load_sources` (bench.report_sources) reads the files; `configs` turns their rows (../shared/conventions/results.md) into one
`Config` per (model, label); `pick` names the configurations every figure compares. bench.report_specs
and bench.report_tables build figures and tables from these.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from bench.report_sources import ReportInputError, Sources, load_sources  # noqa: F401 (the report's API)
from scoring.metrics import CaseErrors, rules

MODELS = ("encoder", "decoder")
NAIVE = "naive fp32 contest"
TORCH_EAGER = "torch eager fp32"
# Roles of the latency-per-shape figure, in legend order.
ROLES = ("naive", "best contest", "best serving", "torch eager", "torch.compile")


def rnd(x):
    """Floats to 6 significant digits (sidecars and tables stay readable and stable); inf/NaN -> None."""
    if isinstance(x, float):
        return float(f"{x:.6g}") if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: rnd(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rnd(v) for v in x]
    return x


def shape_key(bs: int, sl: int) -> str:
    return f"{bs}x{sl}"


@dataclass
class Config:
    model: str
    label: str
    harness: str
    layout: str
    precision: str
    cuda_graph: bool | None
    cases: dict[tuple[int, int], dict] = field(default_factory=dict)   # (bs, sl) -> row

    @property
    def good(self) -> int:
        return sum(1 for r in self.cases.values() if r.get("good"))

    @property
    def all_good(self) -> bool:
        return self.good == len(self.cases)

    @property
    def sum_ms(self) -> float:
        return sum(r["latency_ms"] for r in self.cases.values())

    @property
    def is_torch(self) -> bool:
        return self.harness == "torch"

    def worst_ratio(self) -> float:
        return max(case_ratio(self.model, r) for r in self.cases.values())


def case_ratio(model: str, row: dict) -> float:
    """Worst metric/threshold ratio of one row, as scoring.metrics defines it (Good iff < 1)."""
    vals = [row.get(k) for k in ("a0", "r0", "a1", "r1")]
    if any(v is None for v in vals):
        w = row.get("worst_ratio")
        return math.inf if w is None else float(w)
    return CaseErrors(*(float(v) for v in vals), model).worst_ratio


BENCH = ("layouts", "torch-baselines")
H100 = "layouts@h100"       # the tenth session's full layouts run, on an H100 (its torch rows merged in)


def _rows(src: Sources, keys: tuple[str, ...]) -> list[dict]:
    """The rows of the files `keys`, a later file's only where its label is new."""
    rows: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for key in keys:
        rec = src.data.get(key) or {}
        new = [r for r in rec.get("rows", []) if isinstance(r, dict) and r.get("latency_ms") is not None
               and (r.get("model"), r.get("label")) not in seen]
        seen |= {(r["model"], r["label"]) for r in new}
        rows += new
    return rows


def configs(src: Sources, keys: tuple[str, ...] = BENCH) -> dict[str, dict[str, Config]]:
    """model -> label -> Config, labels in the order the files list them (default: the layouts
    bench and the torch baselines; ("plugins",) or ("precision",) for those files alone)."""
    out: dict[str, dict[str, Config]] = {m: {} for m in MODELS}
    for r in _rows(src, keys):
        try:
            model, label, bs, sl = r["model"], r["label"], int(r["bs"]), int(r["sl"])
            float(r["latency_ms"])
        except (KeyError, TypeError, ValueError) as e:
            raise ReportInputError(f"a results row lacks or mistypes {e}: {str(r)[:120]}") from None
        if model not in out:
            continue
        c = out[model].setdefault(label, Config(model, label, str(r.get("harness", "?")),
                                                str(r.get("layout", "?")), str(r.get("precision", "?")),
                                                r.get("cuda_graph")))
        c.cases[(bs, sl)] = r
    return out


def grid(cfgs: dict[str, Config]) -> list[tuple[int, int]]:
    return sorted({s for c in cfgs.values() for s in c.cases})


def time_ratio(a: Config, b: Config) -> tuple[float | None, int]:
    """(time of a / time of b over the shapes both measured, how many shapes that is)."""
    common = sorted(set(a.cases) & set(b.cases))
    if not common:
        return None, 0
    tb = sum(b.cases[s]["latency_ms"] for s in common)
    return (sum(a.cases[s]["latency_ms"] for s in common) / tb if tb > 0 else None), len(common)


def pick(cfgs: dict[str, Config]) -> dict[str, Config | None]:
    """The configurations of ROLES for one model: best = fastest with every judged shape Good."""
    full = len(grid(cfgs))

    def best(pred) -> Config | None:
        ok = [c for c in cfgs.values() if pred(c) and c.all_good and len(c.cases) == full]
        return min(ok, key=lambda c: (c.sum_ms, c.label)) if ok else None

    compiled = [c for c in cfgs.values() if c.label.startswith("torch.compile")]
    return {"naive": cfgs.get(NAIVE),
            "best contest": best(lambda c: c.harness == "contest"),
            "best serving": best(lambda c: c.harness == "serving"),
            "torch eager": cfgs.get(TORCH_EAGER),
            "torch.compile": min(compiled, key=lambda c: (-c.good, c.sum_ms, c.label)) if compiled else None}


def outputs(model: str) -> tuple[str, str]:
    out0, out1 = rules(model)
    return out0.name, out1.name


def study_series(src: Sources) -> list[dict]:
    """One series per (study, sampler): every COMPLETE trial's value and the best feasible value so far."""
    rec = src.data.get("study")
    if not rec:
        return []
    series: dict[tuple[str, str], dict] = {}
    for st in rec.get("studies", []):
        for t in st.get("trials", []):
            if t.get("state") != "COMPLETE" or t.get("value") is None:
                continue
            ua = t.get("user_attrs") or {}
            sampler = ua.get("sampler") or st.get("sampler") or (st.get("user_attrs") or {}).get("sampler")
            key = (st.get("study", "?"), sampler or "not recorded")
            s = series.setdefault(key, {"study": key[0], "model": st.get("model"), "harness": st.get("harness"),
                                        "sampler": key[1], "trial": [], "value": [], "feasible": [],
                                        "seed": [], "best_so_far": [], "shapes": len(ua.get("cases") or [])})
            s["trial"].append(t["number"])
            s["value"].append(float(t["value"]))
            s["feasible"].append(bool(t.get("feasible")))
            s["seed"].append(ua.get("seed"))
    for s in series.values():
        best = None
        for v, ok in zip(s["value"], s["feasible"]):
            if ok:
                best = v if best is None else min(best, v)
            s["best_so_far"].append(best)
    return [series[k] for k in sorted(series)]


# --- plugins bench: "<base> +ln+lsm <harness>" is <base> with our plugins; its plugin-free base drops the token
PLUGIN_TOKEN = re.compile(r" \+[A-Za-z0-9_]+(?:\+[A-Za-z0-9_]+)*(?= |$)")


def plugin_set(label: str) -> str:
    """'+ln+lsm' for 'passes fp16 norm32 +ln+lsm contest', '' for a label without plugins."""
    m = PLUGIN_TOKEN.search(label)
    return m.group(0).strip() if m else ""


def plugin_free(label: str) -> str:
    return PLUGIN_TOKEN.sub("", label)


def build_of(rec: dict, c: Config) -> dict:
    """The build report of a configuration: builds are labelled without the harness suffix."""
    return next((b for b in rec.get("builds", []) if b.get("model") == c.model
                 and c.label in (b.get("label"), f"{b.get('label')} {c.harness}")), {})


def plugin_sites(build: dict) -> dict[str, int]:
    return {k: v for k, v in (build.get("sites") or {}).items() if k.endswith("_plugin")}


# --- study exports (`search export`): one row per trial, any state
def short_reason(text: str | None, limit: int = 120) -> str:
    """A prune or fail reason in one short line: the first of ' | '-joined messages, without the
    worker's 'error: build: BuildError: TensorRT built no <model> engine: <code>:' preamble."""
    if not text:
        return ""
    t = str(text).split(" | ")[0].strip()
    t = re.sub(r"^error: (\w+): \w+Error: TensorRT built no \w+ engine: \d+: ", r"\1: ", t)
    t = re.sub(r"^error: (\w+): \w+Error: ", r"\1: ", t)         # any other worker error: its stage only
    t = t.replace(" case(s)", " case").replace(" trial(s)", " trials").replace(" at that step", "")
    return t if len(t) <= limit else t[:limit - 3] + "..."


def trials(st: dict) -> list[dict]:
    """Every trial of one exported study, in trial order, with the best feasible objective so far."""
    out, best = [], None
    for t in sorted(st.get("trials", []), key=lambda t: t["number"]):
        ua = t.get("user_attrs") or {}
        done = t["state"] == "COMPLETE" and t.get("value") is not None
        if done and t.get("feasible"):
            best = float(t["value"]) if best is None else min(best, float(t["value"]))
        c = t.get("constraint")
        out.append({"trial": t["number"], "state": t["state"], "label": ua.get("seed") or ua.get("plan") or "-",
                    "value": float(t["value"]) if done else None,
                    "partial": float(t["value"]) if t["state"] == "PRUNED" and t.get("value") is not None else None,
                    "cases_measured": ua.get("cases_measured"),
                    "feasible": bool(t.get("feasible")) if done else None,
                    "worst_ratio": None if c is None or not done else float(c) + 1.0,
                    "build_s": ua.get("build_s"), "duration_s": t.get("duration_s"),
                    "interrupted": ua.get("interrupted"),
                    # who chose the config: an enqueued seed or plan, or the study's sampler
                    "chosen_by": "seed" if ua.get("seed") else "plan" if ua.get("plan") else "sampler",
                    "engine_cache": t.get("engine_cache") or ua.get("engine_cache"),
                    "reason": short_reason(t.get("prune_reason") or t.get("fail_reason")),
                    "best_so_far": best})
    return out

def sampler_study(rec: dict, sampler: str = "tpe") -> dict | None:
    """An export's study run by that sampler (user attr sampler; none recorded: TPE), None where it has none."""
    return next((st for st in rec.get("studies", [])
                 if (st.get("user_attrs") or {}).get("sampler", "tpe") == sampler), None)


def main_study(rec: dict) -> dict | None:
    """An export's TPE study with trials, else its first study with trials."""
    sts = [st for st in rec.get("studies", []) if st.get("trials")]
    tpe = sampler_study({"studies": sts})
    return tpe or (sts[0] if sts else None)


def best_feasible(ts: list[dict]) -> dict | None:
    """The best feasible complete trial of `trials(st)`, by objective (the lower number on a tie)."""
    return min((t for t in ts if t["feasible"]), key=lambda t: (t["value"], t["trial"]), default=None)


def seed_trial(ts: list[dict], seed: str) -> dict | None:
    """The first trial of `trials(st)` of that enqueued seed (its `seed` user attr), any state."""
    return next((t for t in ts if t["chosen_by"] == "seed" and t["label"] == seed), None)


def sampler_curves(studies: list[dict]) -> list[dict]:
    """The samplers' race (issue 10: TPE vs random at equal trials): for every model with studies of more
    than one sampler, each study's best feasible objective after 1, 2, ... trials (any state counts as a trial)."""
    by_model: dict[str, list[dict]] = {}
    for st in studies:
        sampler = (st.get("user_attrs") or {}).get("sampler") or "not recorded"
        ts = trials(st)
        by_model.setdefault(st.get("model") or "?", []).append(
            {"study": st.get("study", "?"), "model": st.get("model"), "sampler": sampler,
             "best_so_far": [t["best_so_far"] for t in ts], "chosen_best": _chosen_best(ts)})
    return [c for cs in by_model.values() if len({c["sampler"] for c in cs}) > 1 for c in cs]


def _chosen_best(ts: list[dict]) -> list[float | None]:
    """Best feasible objective after each trial the sampler chose itself (no seed, no plan): the seeds and
    plans are enqueued, the same whatever the sampler, so only these trials tell samplers apart. A trial
    interrupted by a lost tuner or host (search.stale) says nothing of its config and is left out."""
    out, best = [], None
    for t in ts:
        if t["chosen_by"] != "sampler" or t["interrupted"]:
            continue
        if t["value"] is not None and t["feasible"]:
            best = t["value"] if best is None else min(best, t["value"])
        out.append(best)
    return out


def at_equal_trials(curves: list[dict], model: str) -> tuple[int, dict[str, float | None]]:
    """(n, sampler -> best feasible objective after n trials), n the fewest trials any of the model's studies ran."""
    cs = [c for c in curves if c["model"] == model]
    n = min(len(c["best_so_far"]) for c in cs)
    return n, {c["sampler"]: c["best_so_far"][n - 1] if n else None for c in cs}


def at_equal_choices(curves: list[dict], model: str) -> tuple[int, dict[str, float | None]]:
    """(k, sampler -> best feasible objective among its first k own choices), k the fewest any study made;
    k = 0 means no comparison of the samplers yet."""
    cs = [c for c in curves if c["model"] == model]
    k = min(len(c["chosen_best"]) for c in cs)
    return k, {c["sampler"]: c["chosen_best"][k - 1] if k else None for c in cs}
