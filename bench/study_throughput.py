"""Trials per minute of studies in one storage: the A/B of `tune --workers-per-gpu` (host.sh `workers-ab`).

    python3 bench/study_throughput.py --storage sqlite:///work/study.db \\
        --study wenet-decoder-serving-w3 --study wenet-decoder-serving-w1 --out bench/results/workers-ab-h100.json

With --last-runs N, each study's last N tuning runs (user attr tuner_run, ordered by their first trial's
start) are summarized one by one instead: the A/B of worker counts run one after the other in one study.

For each study (or run): its finished trials by state; the wall span from the first trial's start to the last
one's end; COMPLETE and finished trials per minute of that span; the most trials that ran at once (from
their timestamps, so the file says what concurrency each study really had); and the medians of the
trials' duration_s, build_s, eval_s and gpu_wait_s (search/trial_objective.py's user attrs).
Bad input (no storage, an unknown study, an unwritable --out): one line on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_common import base_record, write_json  # noqa: E402

ATTRS = ("duration_s", "build_s", "eval_s", "gpu_wait_s")


class InputError(Exception):
    """Input this script cannot use: one line, exit status 2."""


def most_at_once(intervals: list[tuple[dt.datetime, dt.datetime]]) -> int:
    """The largest number of intervals that overlap at one instant (an end before a start at a tie)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def throughput(trials: list) -> dict[str, Any]:
    """The summary of one study's finished trials (optuna FrozenTrials)."""
    done = [t for t in trials if t.state.is_finished() and t.datetime_start and t.datetime_complete]
    states: dict[str, int] = {}
    for t in done:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    out: dict[str, Any] = {"finished": len(done), "states": states}
    if not done:
        return out
    start = min(t.datetime_start for t in done)
    span_s = (max(t.datetime_complete for t in done) - start).total_seconds()
    minutes = span_s / 60 if span_s > 0 else None
    out.update(span_s=round(span_s, 1),
               most_at_once=most_at_once([(t.datetime_start, t.datetime_complete) for t in done]),
               complete_per_min=round(states.get("COMPLETE", 0) / minutes, 3) if minutes else None,
               finished_per_min=round(len(done) / minutes, 3) if minutes else None)
    for key in ATTRS:
        out[f"median_{key}"] = _median([float(t.user_attrs[key]) for t in done
                                        if isinstance(t.user_attrs.get(key), (int, float))])
    return out


def runs_of(trials: list, last: int) -> list[tuple[str, list]]:
    """The last `last` tuning runs among trials (user attr tuner_run), oldest first, each with its trials."""
    by_run: dict[str, list] = {}
    for t in trials:
        run = t.user_attrs.get("tuner_run")
        if run is not None and t.datetime_start is not None:
            by_run.setdefault(run, []).append(t)
    ordered = sorted(by_run.items(), key=lambda kv: min(t.datetime_start for t in kv[1]))
    return ordered[-last:]


def _workers(trials: list) -> int | None:
    """The run's workers per GPU (user attr of its trials; None where the tuner predates it)."""
    seen = {t.user_attrs.get("workers_per_gpu") for t in trials} - {None}
    return seen.pop() if len(seen) == 1 else None


def report(url: str, names: list[str], last_runs: int = 0) -> list[dict[str, Any]]:
    import optuna

    from search.errors import SearchError
    from search.storage import make_storage

    try:      # a reader: a missing database or a bad URL is one line, and nothing is written
        storage = make_storage(url, heartbeat_interval=None, must_exist=True)
    except SearchError as exc:
        raise InputError(str(exc)) from None
    known = set(optuna.study.get_all_study_names(storage))
    rows = []
    for name in names:
        if name not in known:
            raise InputError(f"no study {name!r} in {url} (it has: {', '.join(sorted(known)) or 'none'})")
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        if not last_runs:
            rows.append({"study": name, **throughput(trials)})
            continue
        runs = runs_of(trials, last_runs)
        if len(runs) < last_runs:
            raise InputError(f"study {name!r} has {len(runs)} tuning run(s) with trials, not the {last_runs} asked for")
        rows += [{"study": name, "tuner_run": run, "workers_per_gpu": _workers(ts), **throughput(ts)}
                 for run, ts in runs]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/study_throughput.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", required=True, help="SQLAlchemy URL of the study database")
    p.add_argument("--study", action="append", required=True, help="a study to summarize (repeatable)")
    p.add_argument("--last-runs", type=int, default=0,
                   help="summarize each study's last N tuning runs one by one (default: the study as one)")
    p.add_argument("--gpu", default="unknown", help="GPU name for the file's header")
    p.add_argument("--out", default=None, help="JSON file to write (default: print only)")
    args = p.parse_args(argv)
    try:
        if args.last_runs < 0:
            raise InputError(f"--last-runs {args.last_runs}: need 0 or more")
        rows = report(args.storage, args.study, args.last_runs)
        doc = {**base_record(args.gpu), "kind": "study-throughput", "studies": rows,
               "command": " ".join(["python3 bench/study_throughput.py",
                                    *(argv if argv is not None else sys.argv[1:])])}
        if args.out:
            try:
                write_json(args.out, doc)
            except OSError as exc:
                raise InputError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in rows:
        run = f" run {r['tuner_run']} ({r['workers_per_gpu']} per GPU)" if "tuner_run" in r else ""
        print(f"{r['study']}{run}: {r['finished']} finished {r['states']}, {r.get('complete_per_min')} COMPLETE/min, "
              f"at most {r.get('most_at_once')} at once, median {r.get('median_duration_s')} s a trial "
              f"(GPU wait {r.get('median_gpu_wait_s')} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
