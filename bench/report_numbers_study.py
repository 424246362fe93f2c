"""README's inline numbers from the decoder contest studies, their build.sh rebuild, the decoder serving study
(H100) and its rebuild under the contest harness, and the cache builds."""
from __future__ import annotations

import re
import statistics
from typing import Callable

from bench.report_data import Sources, best_feasible, main_study, sampler_study, seed_trial, trials
from bench.report_registry import ms, number, times
from bench.report_study_blocks import WAB
from search.results import STAGES


# --- the decoder contest study (study-decoder-contest-<gpu>.json) and its frozen best rebuilt ----------
SDC = "study-decoder-contest"


def _sdc_study(s, sampler: str = "tpe") -> dict:
    """The export's study of that sampler (the TPE study; the random-sampler one beside it)."""
    return sampler_study(s.data[SDC], sampler)


def _sdc_trials(s, sampler: str = "tpe") -> list[dict]:
    return trials(_sdc_study(s, sampler))


def _sdc_before_best(s) -> dict:
    """The best feasible trial before the study's best (the best of the sessions before it)."""
    best = _sdc_best(s)
    return min((t for t in _sdc_trials(s) if t["feasible"] and t["trial"] < best["trial"]), key=lambda t: t["value"])


def _baseline(s, sampler: str) -> float:
    return next(t["value"] for t in _sdc_trials(s, sampler) if t["trial"] == 0)


def _sdc_best(s) -> dict:
    return best_feasible(_sdc_trials(s))


def first_within(ts: list[dict], frac: float) -> str:
    """The first trial whose feasible value is within frac of the study's final best."""
    best = best_feasible(ts)["value"]
    return f"trial {min(t['trial'] for t in ts if t['feasible'] and t['value'] <= best * (1 + frac))}"


def study_counts(prefix: str, key: str, what: str, ts: Callable[[Sources], list[dict]]) -> None:
    """A study's trials, COMPLETE trials, best feasible trial and its objective: PREFIX.trials/complete/best/best-ms."""
    number(f"{prefix}.trials", key, f"trials of the {what}", lambda s: str(len(ts(s))))
    number(f"{prefix}.complete", key, f"COMPLETE trials of the {what}",
           lambda s: str(sum(t["state"] == "COMPLETE" for t in ts(s))))
    number(f"{prefix}.best", key, f"the {what}'s best feasible trial",
           lambda s: f"trial {best_feasible(ts(s))['trial']}")
    number(f"{prefix}.best-ms", key, f"its objective ({what})", lambda s: ms(best_feasible(ts(s))["value"], 2))


study_counts("dstudy", SDC, "decoder contest study", _sdc_trials)
number("dstudy.best-speedup", SDC, "baseline trial 0's objective / the best feasible objective",
       lambda s: times(_baseline(s, "tpe") / _sdc_best(s)["value"]))
number("dstudy.within5", SDC, "the first trial within 5% of the study's best",
       lambda s: first_within(_sdc_trials(s), 0.05))


def _sdc_within_own(s, frac: float) -> str:
    """How many trials (seeds and TPE's own choices, the plans left out) until one within frac of the best."""
    best = _sdc_best(s)["value"]
    n = 0
    for t in _sdc_trials(s):
        if t["chosen_by"] == "plan" or t["interrupted"]:
            continue                               # a precision plan, or a trial a lost host cut short
        n += 1
        if t["feasible"] and t["value"] <= best * (1 + frac):
            return f"{n} trials"
    return "never"


number("dstudy.within5-own", SDC, "seeds + TPE's own trials (no plan) until one within 5% of the best",
       lambda s: _sdc_within_own(s, 0.05))


def _own_durations(s) -> list[float]:
    return [t["duration_s"] for t in _sdc_trials(s) if t["chosen_by"] == "sampler" and t["duration_s"]]


number("dstudy.own-median-s", SDC, "median duration of the trials TPE chose itself (any state)",
       lambda s: f"{statistics.median(_own_durations(s)):.0f} s")
number("dstudy.own-n", SDC, "how many of them ran to an end", lambda s: str(len(_own_durations(s))))
number("dstudy.before-best", SDC, "the best feasible trial before the best one, and its objective",
       lambda s: f"trial {_sdc_before_best(s)['trial']} at {ms(_sdc_before_best(s)['value'], 2)}")
number("dstudy.best-gain", SDC, "how much faster the best is than the best before it",
       lambda s: f"{(_sdc_before_best(s)['value'] / _sdc_best(s)['value'] - 1) * 100:.1f}%")
number("dstudy.baseline-ms", SDC, "the TPE study's baseline trial 0", lambda s: ms(_baseline(s, "tpe"), 2))
number("rstudy.baseline-ms", SDC, "the random-sampler study's baseline trial 0 (a later session)",
       lambda s: ms(_baseline(s, "random"), 2))
number("rstudy.trials", SDC, "trials of the random-sampler study", lambda s: str(len(_sdc_trials(s, "random"))))
number("rstudy.chosen", SDC, "trials the random sampler chose itself (no seed, no plan), any state",
       lambda s: str(sum(t["chosen_by"] == "sampler" for t in _sdc_trials(s, "random"))))

RDC = "reproduce-decoder-contest"
number("repro-dec.outside", RDC, "shapes outside the tolerance, of all compared",
       lambda s: f"{sum(not c.get('within') for c in s.data[RDC]['compare'])} of {len(s.data[RDC]['compare'])}")
number("repro-dec.max-dev", RDC, "largest |build.sh / trial - 1| over the shapes",
       lambda s: f"{max(abs(c['ratio'] - 1) for c in s.data[RDC]['compare']) * 100:.1f}%")


# --- the decoder serving study (study-decoder-serving-h100.json) and its best rebuilt, contest harness --
SSD, SSD_CONTEST = "study-decoder-serving", "reproduce-eval-decoder-serving-contest"


def _ssd_trials(s) -> list[dict]:
    return trials(main_study(s.data[SSD]))


def _ssd_best(s) -> dict:
    return best_feasible(_ssd_trials(s))


def _ssd_seed(s, seed: str) -> float:
    """The objective of the serving study's trial of that enqueued seed."""
    return seed_trial(_ssd_trials(s), seed)["value"]


def _contest_ms(s) -> float:
    """evaluate.py's objective of the rebuilt plan (the sum of its case latencies where none is recorded)."""
    m = s.data[SSD_CONTEST]["models"]["decoder"]
    return m["objective"] if m.get("objective") is not None else sum(c["latency_ms"] for c in m["cases"])


study_counts("sstudy", SSD, "decoder serving study", _ssd_trials)
number("sstudy.within5", SSD, "the first trial within 5% of the serving study's best",
       lambda s: first_within(_ssd_trials(s), 0.05))
number("sstudy.baseline-ms", SSD, "the serving study's baseline seed's objective",
       lambda s: ms(_ssd_seed(s, "baseline"), 2))
number("sstudy.best-vs-baseline", SSD, "the best feasible objective / the baseline seed's",
       lambda s: times(_ssd_best(s)["value"] / _ssd_seed(s, "baseline")))
number("sstudy.tf32-vs-fp32", SSD, "the per_batch_tf32 seed's objective / the per_batch (FP32) seed's",
       lambda s: times(_ssd_seed(s, "per_batch_tf32") / _ssd_seed(s, "per_batch")))
number("sstudy.best-vs-fp32", SSD, "speed-up of the best over the per_batch (FP32) seed: its objective / the best's",
       lambda s: times(_ssd_seed(s, "per_batch") / _ssd_best(s)["value"]))
number("sstudy.best-vs-tf32", SSD, "speed-up of the best over the per_batch_tf32 seed: its objective / the best's",
       lambda s: times(_ssd_seed(s, "per_batch_tf32") / _ssd_best(s)["value"]))
number("sstudy.best-contest-ms", SSD_CONTEST, "the serving study's best, rebuilt, under the contest harness: "
       "evaluate.py's objective", lambda s: ms(_contest_ms(s), 2))

CB = "cache-builds"


def _cache_row(s, label: str) -> dict:
    return next(r for r in s.data[CB]["rows"] if r.get("label") == label and r.get("model") == "decoder")


def _cache_builds(label: str) -> Callable[[Sources], str]:
    """'cold X s, warm Y s' of one decoder layout's engine (build_s: TensorRT's build alone)."""
    def text(s) -> str:
        r = _cache_row(s, label)
        return f"cold {r['cold_build_s']:.0f} s, warm {r['warm_build_s']:.0f} s"
    return text


number("cache.dec.naive", CB, "decoder naive FP32: build time with an empty timing cache, then with its own",
       _cache_builds("naive fp32"))
number("cache.dec.per_batch", CB, "decoder per_batch FP32: build time with an empty timing cache, then with its own",
       _cache_builds("per_batch fp32"))
number("cache.dec.saved", CB, "decoder: the share of build time the warm cache saved, per measured layout (lowest-highest)",
       lambda s: "-".join(f"{(1 - r['warm_over_cold']) * 100:.0f}%" for r in
                          sorted(s.data[CB]["rows"], key=lambda r: r["warm_over_cold"], reverse=True)
                          if r.get("warm_over_cold") is not None))


def _by_opt_level(s) -> dict[int, list[dict]]:
    """Every trial record of both decoder contest studies, by builder optimization level."""
    out: dict[int, list[dict]] = {}
    for st in s.data[SDC]["studies"]:
        for r in st["trials"]:
            level = (r.get("params") or {}).get("opt_level")
            if level is not None:
                out.setdefault(int(level), []).append(r)
    return dict(sorted(out.items()))


def _median_build_by_level(s) -> str:
    parts = []
    for level, recs in _by_opt_level(s).items():
        builds = [r["user_attrs"]["build_s"] for r in recs if isinstance((r.get("user_attrs") or {}).get("build_s"), (int, float))]
        if builds:
            parts.append(f"level {level} {statistics.median(builds):.0f} s ({len(builds)})")
    return ", ".join(parts)


def _best_by_level(s) -> dict[int, float]:
    """The best feasible objective at each optimization level that has a feasible trial."""
    return {level: min(r["value"] for r in recs if r.get("feasible"))
            for level, recs in _by_opt_level(s).items() if any(r.get("feasible") for r in recs)}


number("dstudy.build-by-opt", SDC, "both decoder contest studies: median TensorRT build time per builder optimization "
       "level (trials that built, count in brackets)", _median_build_by_level)
number("dstudy.opt1-vs-best", SDC, "best feasible objective at optimization level 1 / the best at any level",
       lambda s: f"{_best_by_level(s)[1] / min(_best_by_level(s).values()):.3f}x")


def _build_share(s) -> str:
    """Of both decoder studies' trials that recorded their stages: TensorRT's build / their wall time."""
    staged = [r for st in s.data[SDC]["studies"] for r in st["trials"]
              if r.get("duration_s") and all(isinstance((r.get("user_attrs") or {}).get(k), (int, float))
                                             for k in STAGES)]
    share = sum(r["user_attrs"]["build_s"] for r in staged) / sum(r["duration_s"] for r in staged)
    return f"{share:.0%} of {len(staged)} trials' time"


number("dstudy.build-share", SDC, "both decoder contest studies: the engine build's share of the wall time of the "
       "trials that recorded their stages (so far the complete ones)", _build_share)


# --- tune --workers-per-gpu: the A/B of bench/host.sh workers-ab (workers-ab-h100.json) ------------------


def _ab_run(key: str, workers: int) -> Callable[[Sources], dict]:
    """The (last) row of that many workers per GPU in a bench/study_throughput.py file."""
    return lambda s: [r for r in s.data[key]["studies"] if r.get("workers_per_gpu") == workers][-1]


# the numbers of one tuning run: name -> (what, its text from the run's row)
RUN_NUMBERS: dict[str, tuple[str, Callable[[dict], str]]] = {
    "finished": ("trials the {w}-worker run finished", lambda r: str(r["finished"])),
    "complete": ("COMPLETE trials of the {w}-worker run", lambda r: str(r["states"].get("COMPLETE", 0))),
    "complete-per-min": ("COMPLETE trials per minute of the {w}-worker run", lambda r: f"{r['complete_per_min']:.2f}"),
    "median-build": ("the {w}-worker run's median build time (a killed trial's too)",
                     lambda r: f"{r['median_build_s']:.0f} s"),
    "gpu-wait": ("the {w}-worker run's median wait for the GPU (a measurement or a build waiting)",
                 lambda r: f"{r['median_gpu_wait_s']:.0f} s")}


def ab_numbers(prefix: str, key: str, runs: dict[int, tuple[str, ...]]) -> None:
    """Register <prefix>.w<N>.<name> for each worker count N and each of its RUN_NUMBERS names."""
    for w, names in runs.items():
        for name in names:
            what, text = RUN_NUMBERS[name]
            number(f"{prefix}.w{w}.{name}", key, what.format(w=w), lambda s, row=_ab_run(key, w), t=text: t(row(s)))


ab_numbers("wab", WAB, {3: ("finished", "complete", "median-build"), 1: ("finished", "complete", "complete-per-min")})


def _ssd_records(s, shared: bool) -> list[dict]:
    """The serving study's raw trial records from runs with several workers per GPU (shared), or with one
    (trials of runs older than the workers_per_gpu attr had one)."""
    return [r for r in main_study(s.data[SSD])["trials"]
            if (((r.get("user_attrs") or {}).get("workers_per_gpu") or 1) > 1) == shared]


def _alone_fp16_build(s) -> str:
    """The COMPLETE FP16 trial of the first A/B's 1-worker run in the serving study: its build time (the same
    builds, side by side, ran past the timeout)."""
    run = _ab_run(WAB, 1)(s)["tuner_run"]
    r = [r for r in _ssd_records(s, shared=False) if (r.get("user_attrs") or {}).get("tuner_run") == run
         and r["state"] == "COMPLETE" and (r.get("params") or {}).get("fp16")][-1]
    return f"{r['user_attrs']['build_s']:.0f} s (trial {r['number']})"


number("wab.alone-fp16-build", f"{SSD},{WAB}", "the serving study's COMPLETE FP16 trial of the first A/B's "
       "1-worker run: its build time", _alone_fp16_build)


# --- the A/B with room (workers-ab-2v1-h100.json): 2 workers, then 1, on the queued precision plans --------
WAB2 = "workers-ab-2v1"


ab_numbers("wab2", WAB2, {2: ("finished", "complete", "complete-per-min", "median-build", "gpu-wait"),
                         1: ("finished", "complete", "complete-per-min", "median-build")})
number("wab2.gain", WAB2, "COMPLETE trials per minute, 2 workers / 1 worker",
       lambda s: times(_ab_run(WAB2, 2)(s)["complete_per_min"] / _ab_run(WAB2, 1)(s)["complete_per_min"]))


def _multi_worker_timeout(s) -> str:
    """The trial timeout that killed the serving study's trials of a multi-worker run (from their fail reasons)."""
    reasons = [r.get("fail_reason") or "" for r in _ssd_records(s, shared=True)]
    return next(m.group(1) for m in map(re.compile(r"timeout of (\d+ s)").search, reasons) if m)


number("wab.timeout", SSD, "the trial timeout of the serving study's multi-worker run (its FAIL reasons)",
       _multi_worker_timeout)
