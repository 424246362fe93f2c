"""The project's one error base, and the workload package's exceptions.

`OneLineError` is the base of every error a command reports as one line: the CLIs
(`python -m search|engine|candidates|plugins|workload`, evaluate.py) catch it, print
`error: <first line>` on stderr and exit with status 2. Each package derives its own
errors from it (EngineError, PassError, SearchError, EvaluateError, ...); it lives here,
at the bottom of the import graph, so every package can. `OneLineParser` is the argparse of
those CLIs: a usage error is the same one line and exit status.
"""
from __future__ import annotations

import argparse
import sys


class OneLineError(Exception):
    """Bad input or a failure a user can act on: the message's first line says what and why."""


class WorkloadError(OneLineError):
    """Bad input to the workload package (config, checkpoint, grid, device)."""


class CheckpointError(WorkloadError):
    """A checkpoint that does not fit the model: missing, unreadable, wrong keys or shapes."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other bad input (--help has the usage)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {self.prog}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's text, or its type name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def report(exc: BaseException) -> int:
    """What every CLI does with a OneLineError: one `error: ...` line on stderr; returns 2, the exit status."""
    print(f"error: {first_line(exc)}", file=sys.stderr)
    return 2
