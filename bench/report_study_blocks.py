"""README blocks of the decoder studies: every trial of a study export (the contest study, the serving
study), the samplers' race where an export holds a random study, the serving study's per-shape table, and
the workers-per-GPU A/B (bench/study_throughput.py).

Like bench.report_tables, every number is read from a committed bench/results file.
"""
from __future__ import annotations

from bench.report_data import (Sources, at_equal_choices, at_equal_trials, best_feasible, main_study,
                               sampler_curves, seed_trial, shape_key, trials)
from bench.report_tables import table

SSD = "study-decoder-serving"
SSD_CONTEST = "reproduce-eval-decoder-serving-contest"      # the rebuilt best, under the contest harness
SSD_REPRODUCE = "reproduce-decoder-serving"                 # which trial was rebuilt
# the seeds the per-shape table compares with the study's best: the naive baseline, one FP32 profile
# per batch, and the same with TF32
SHAPE_SEEDS = ("baseline", "per_batch", "per_batch_tf32")


def _not_made(src: Sources, key: str) -> str:
    return f"_Not made: {src.missing(key)}._"


def decoder_study(src: Sources, key: str = "study-decoder-contest") -> str:
    rec = src.data.get(key)
    if rec is None:
        return _not_made(src, key)
    out = []
    for st in rec.get("studies", []):
        ts = trials(st)
        states = {}
        for t in ts:
            states[t["state"]] = states.get(t["state"], 0) + 1
        best = best_feasible(ts)
        rows = []
        for t in ts:
            val = (f"{t['value']:.2f}" if t["value"] is not None else
                   f"({t['partial']:.2f} after {t['cases_measured'] or '?'} case)" if t["partial"] is not None else "-")
            rows.append([t["trial"], t["label"], t["state"], val,
                         "-" if t["feasible"] is None else "yes" if t["feasible"] else "no",
                         "-" if t["worst_ratio"] is None else f"{t['worst_ratio']:.3g}",
                         "-" if t["build_s"] is None else f"{t['build_s']:.0f}",
                         "-" if t["duration_s"] is None else f"{t['duration_s']:.0f}", t["engine_cache"] or "-",
                         f"`{t['reason']}`" if t["reason"] else ""])
        out.append(f"`{st.get('study')}` ({st.get('model')}, {st.get('harness')} harness): {len(ts)} trials, "
                   + ", ".join(f"{k} {v}" for k, v in sorted(states.items())) + "; best feasible: "
                   + (f"trial {best['trial']} `{best['label']}`, {best['value']:.2f} ms." if best else "none.")
                   + "\n\n" + table(["trial", "seed / plan", "state", "objective ms", "feasible", "worst ratio",
                                     "build s", "duration s", "engine cache", "prune / fail reason (shortened)"], rows))
    date, _ = src.meta(key)
    return (f"`{src.name(key)}` (`python3 -m search export`, {date}; optuna "
            f"{rec.get('optuna', '-')}):\n\n" + "\n\n".join(out) + "\n\nA pruned trial's objective is the partial "
            "sum it had when it was stopped; an infeasible one's carries the penalty." + _sampler_race(rec))


def _sampler_race(rec: dict) -> str:
    """TPE vs random at equal trials, where the export holds studies of both samplers for a model."""
    curves = sampler_curves([st for st in rec.get("studies", []) if st.get("trials")])
    lines = []
    for model in sorted({c["model"] for c in curves}):
        n, best = at_equal_trials(curves, model)
        # no ratio here: the first trials of every study are the same enqueued seeds
        lines.append(f"- {model}, best feasible after {n} trials each (seeds and plans included): {_each(best)}")
        k, own = at_equal_choices(curves, model)
        if k:
            lines.append(f"- {model}, best feasible among the first {k} trials each sampler chose itself (no seed, "
                         f"no plan): {_each(own)}{_random_over_tpe(own)}")
        else:
            lines.append(f"- {model}: no comparison of the samplers yet: "
                         + ", ".join(f"`{c['study']}` ({c['sampler']}) chose {len(c['chosen_best'])}"
                                     for c in curves if c["model"] == model)
                         + " trials itself; the others were the same enqueued seeds or plans")
    return ("\n\nSamplers at equal trials (the sampler race in the figure below):\n" + "\n".join(lines)) if lines else ""


def _each(best: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {v:.2f} ms" if v is not None else f"{k} none feasible" for k, v in sorted(best.items()))


def _random_over_tpe(best: dict[str, float | None]) -> str:
    return f"; random / TPE = {best['random'] / best['tpe']:.2f}x" if best.get("tpe") and best.get("random") else ""


# --- the serving study per shape ---------------------------------------------------------------------
Cases = dict[tuple[int, int], dict]


def _trial_cases(st: dict, number: int) -> Cases:
    """(batch, frames) -> the case record of one trial of an export (its user attr `cases`)."""
    raw = next(t for t in st["trials"] if t["number"] == number)
    return {(c["batch"], c["length"]): c for c in (raw.get("user_attrs") or {}).get("cases") or []}


def _rebuilt_label(src: Sources, st: dict, best: dict | None, key: str) -> str:
    """What the rebuilt-plan column holds: the best trial, as bench/reproduce.py's file says, or which trial."""
    rep = src.data.get(key)
    rebuilt = sorted({c.get("trial") for c in (rep or {}).get("compare") or [] if c.get("study") == st.get("study")},
                     key=str)
    if not rebuilt:
        return "rebuilt plan, contest harness"
    if best is not None and rebuilt == [best["trial"]]:
        return "best, rebuilt, contest harness"
    return f"trial {', '.join(map(str, rebuilt))}, rebuilt, contest harness"


def _cell(c: dict | None) -> str:
    return "-" if c is None else f"{c['latency_ms']:.3f}" + ("" if c.get("good") else "*")


def serving_shapes(src: Sources, key: str = SSD, contest_key: str = SSD_CONTEST, rep_key: str = SSD_REPRODUCE,
                   seeds: tuple[str, ...] = SHAPE_SEEDS) -> str:
    """Latency per shape of a study's seed trials and its best feasible trial (from the export's `cases`),
    and of the best's rebuilt plan under the contest harness (evaluate.py --json)."""
    rec = src.data.get(key)
    if rec is None:
        return _not_made(src, key)
    st = main_study(rec)
    if st is None:
        return f"_`{src.name(key)}` has no trial._"
    ts = trials(st)
    best = best_feasible(ts)
    cols: list[tuple[str, Cases]] = []
    base: Cases | None = None
    picked = set()
    for seed in seeds:
        t = seed_trial(ts, seed)
        if t is None:
            continue
        is_best = best is not None and t["trial"] == best["trial"]
        cols.append((f"{seed} (trial {t['trial']}" + (", best)" if is_best else ")"), _trial_cases(st, t["trial"])))
        picked.add(t["trial"])
        if seed == "baseline":
            base = cols[-1][1]
    if best is not None and best["trial"] not in picked:
        cols.append((f"trial {best['trial']} (best)", _trial_cases(st, best["trial"])))
    ev = src.data.get(contest_key)
    if ev is not None:
        m = (ev.get("models") or {}).get(st.get("model")) or {}
        cols.append((_rebuilt_label(src, st, best, rep_key),
                     {(c["batch"], c["length"]): c for c in m.get("cases", [])}))
    shapes = sorted({s for _, cs in cols for s in cs})
    rows = [[shape_key(*s), *(_cell(cs.get(s)) for _, cs in cols)] for s in shapes]
    sums = [sum(c["latency_ms"] for c in cs.values()) for _, cs in cols]
    rows.append(["sum", *(f"{x:.3f}" + ("" if len(cs) == len(shapes) else f" ({len(cs)} shapes)")
                          for x, (_, cs) in zip(sums, cols))])
    b = sum(c["latency_ms"] for c in base.values()) if base else None
    # a ratio only within the study's harness: the contest column has no baseline of its own harness here
    n_study = len(cols) - (ev is not None)
    rows.append(["vs baseline", *("-" if not b or i >= n_study or len(cs) != len(base) else f"{x / b:.2f}x"
                                  for i, (x, (_, cs)) in enumerate(zip(sums, cols)))])
    date = (src.meta(key)[0] or "date not recorded")[:10]
    ev_date = (src.meta(contest_key)[0] or "date not recorded")[:10]
    missing = [s for s in seeds if seed_trial(ts, s) is None]
    return (f"From `{src.name(key)}` (every column but the last: one study, `{st.get('study')}`, "
            f"{st.get('harness')} harness, run on one GPU ({src.gpu_of(key).upper()}), exported {date})"
            + (f" and `{src.name(contest_key)}` (the last column: a later run, {ev_date}, of the rebuilt plan on "
               f"the same host, {src.gpu_of(contest_key).upper()}, under the contest harness: evaluate.py "
               f"`--harness {ev.get('harness') or 'contest'}`, the organisers' loop)" if ev is not None
               else f"; {src.missing(contest_key)}")
            + (f"; which trial was rebuilt: `{src.name(rep_key)}`" if src.data.get(rep_key) else "") + ".\n\n"
            + table(["shape (batch x frames)", *(h for h, _ in cols)], rows)
            + "\n\nLatency in ms per shape; `*` = a Bad case (an error over the contest's threshold); `vs baseline`: "
            "the column's sum / the baseline seed's sum, within the study's harness (the contest column has no "
            "baseline measured in its harness in this run, so no ratio)."
            + (f" No trial of the seed{'s' if len(missing) > 1 else ''} " + ", ".join(f"`{s}`" for s in missing)
               + " in the export." if missing else ""))


WAB = "workers-ab"


def _num(x, fmt: str = "{:.0f}") -> str:
    return "-" if x is None else fmt.format(x)


def workers_ab(src: Sources, key: str = WAB) -> str:
    """One row per study or tuning run of bench/study_throughput.py's file: what ran at once, and how fast."""
    rec = src.data.get(key)
    if rec is None:
        return _not_made(src, key)
    rows = [[f"`{r['study']}`" + (f" run `{r['tuner_run']}`" if r.get("tuner_run") else ""),
             _num(r.get("workers_per_gpu"), "{}"), r["finished"],
             ", ".join(f"{k} {v}" for k, v in sorted(r.get("states", {}).items())) or "-",
             _num(r.get("most_at_once"), "{}"), _num(r.get("span_s")), _num(r.get("complete_per_min"), "{:.2f}"),
             *(_num(r.get(f"median_{k}")) for k in ("duration_s", "build_s", "eval_s", "gpu_wait_s"))]
            for r in rec["studies"]]
    date, command = src.meta(key)
    return (f"`{src.name(key)}` ({date}, {rec.get('gpu', '-')}; `{command}`):\n\n"
            + table(["study / tuning run", "workers per GPU", "finished", "states", "most at once", "span s",
                     "COMPLETE / min", "median trial s", "median build s", "median eval s", "median GPU wait s"], rows)
            + "\n\nThe span runs from the first trial's start to the last one's end; the medians are over the "
              "finished trials that recorded the stage (a trial killed by its timeout has a build time, no eval).")
