"""What the report shows, from the committed bench/results/*.json only (no TensorRT, no GPU, no matplotlib).

`load_sources` reads the files; `configs` turns their rows (../shared/conventions/results.md) into one
`Config` per (model, label); `pick` names the configurations every figure compares. bench.report_specs
and bench.report_tables build figures and tables from these.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from scoring.metrics import CaseErrors, rules

MODELS = ("encoder", "decoder")
NAIVE = "naive fp32 contest"
TORCH_EAGER = "torch eager fp32"
# Roles of the latency-per-shape figure, in legend order.
ROLES = ("naive", "best contest", "best serving", "torch eager", "torch.compile")


class ReportInputError(Exception):
    """Input the report cannot use: one line on stderr, exit status 2."""


def _file_names(gpu: str) -> dict[str, str]:
    return {k: f"{k}-{gpu}.json" for k in ("layouts", "torch-baselines", "study", "precision", "pareto",
                                           "diag-trt86", "diag-decoder-batch1", "probe")}


@dataclass
class Sources:
    results: Path
    gpu: str
    data: dict[str, dict | None]      # short name -> parsed file, None where the file is absent

    def name(self, key: str) -> str:
        return f"bench/results/{_file_names(self.gpu)[key]}"

    def missing(self, key: str) -> str:
        return f"{self.name(key)} is missing"


def load_sources(results: Path, gpu: str) -> Sources:
    if not results.is_dir():
        raise ReportInputError(f"no results folder at {results}")
    data: dict[str, dict | None] = {}
    for key, fname in _file_names(gpu).items():
        path = results / fname
        if not path.is_file():
            data[key] = None
            continue
        try:
            data[key] = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ReportInputError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data[key], dict):
            raise ReportInputError(f"{path}: expected a JSON object at the top")
    if not any(v is not None for v in data.values()):
        raise ReportInputError(f"no result files for gpu '{gpu}' in {results} (expected e.g. layouts-{gpu}.json)")
    return Sources(results, gpu, data)


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


def _rows(src: Sources) -> list[dict]:
    """Layouts rows, then torch and precision rows whose label the layouts file lacks."""
    rows: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for key in ("layouts", "torch-baselines", "precision"):
        rec = src.data.get(key) or {}
        new = [r for r in rec.get("rows", []) if isinstance(r, dict) and r.get("latency_ms") is not None
               and (r.get("model"), r.get("label")) not in seen]
        seen |= {(r["model"], r["label"]) for r in new}
        rows += new
    return rows


def configs(src: Sources) -> dict[str, dict[str, Config]]:
    """model -> label -> Config, labels in the order the files list them."""
    out: dict[str, dict[str, Config]] = {m: {} for m in MODELS}
    for r in _rows(src):
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
