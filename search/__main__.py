"""python -m search: see search/cli.py.

SIGTERM (what `timeout`, `docker stop` and batch schedulers send) is handled like Ctrl-C: it
becomes KeyboardInterrupt, so Optuna fails the running trial (user attr interrupted: SIGTERM),
the runner kills the worker's process group, and the CLI prints one line and exits 130.
"""
import signal
import sys


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


signal.signal(signal.SIGTERM, _interrupt)
try:
    from search.cli import main
except KeyboardInterrupt:           # stopped while still importing: nothing started yet
    print("interrupted before anything started", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
