"""CLI: `python -m plugins list [--model M]`, `python -m plugins apply IN OUT --passes a,b [--model M]`:
candidates' CLI over graph passes and plugin rewrites together (mixed on one command line)."""
from __future__ import annotations

import sys

import plugins  # noqa: F401  (registers the plugin rewrites)
from candidates.__main__ import main as _candidates_main
from candidates.framework import PASS, PLUGIN


def main(argv: list[str] | None = None) -> int:
    return _candidates_main(argv, prog="python -m plugins", kinds=(PASS, PLUGIN))


if __name__ == "__main__":
    sys.exit(main())
