"""One GPU worker slot's optimize loop, started by `python -m search tune --gpus 0,1` (one process per GPU, or per
(GPU, worker) with --workers-per-gpu N).

    python -m search.gpu_loop --options JSON --model encoder --gpu 1 --slot K --n-trials N --budget SECONDS --run-id ID

Not meant to be run by hand: `tune` passes its options as JSON so both sides
agree on every setting, and its run id so that its trials count as the run's. Ctrl-C /
SIGTERM marks the running trial FAIL (Optuna; user attr interrupted names the signal) and exits.
"""
from __future__ import annotations

import argparse
import signal
import sys

from search.errors import SearchError
from search.options import TuneOptions
from search.tuning import gpu_loop


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m search.gpu_loop", description=__doc__.split("\n\n")[0])
    p.add_argument("--options", required=True, help="TuneOptions as JSON (written by tune)")
    p.add_argument("--model", required=True)
    p.add_argument("--gpu", required=True)
    p.add_argument("--n-trials", default="", help="trials to run here; empty: until the budget is spent")
    p.add_argument("--budget", default="", help="seconds of tuning (clock starts after setup); empty: none")
    p.add_argument("--run-id", default=None, help="user attr tuner_run of the trials (default: a new id)")
    p.add_argument("--slot", type=int, default=None, help="this loop's index among every GPU's workers "
                   "(its sampler seed is --seed + slot; default: the GPU's index)")
    args = p.parse_args(argv)
    # The parent stops us with SIGTERM: turn it into KeyboardInterrupt so Optuna fails the
    # running trial cleanly and the runner kills its worker.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        opts = TuneOptions.from_json(args.options)
        gpu_loop(opts, args.model, args.gpu, int(args.n_trials) if args.n_trials else None,
                 float(args.budget) if args.budget else None,
                 callbacks=[lambda study, t: print(f"trial {t.number} {t.state.name}", flush=True)],
                 run_id=args.run_id, slot=args.slot)
    except SearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
