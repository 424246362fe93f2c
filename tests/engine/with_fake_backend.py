"""Run a command with the backend test double (fake_backend.py) installed, for CPU tests of whole CLIs:

    python tests/engine/with_fake_backend.py -m engine build ...     # a module, like python -m
    python tests/engine/with_fake_backend.py evaluate.py ...         # a script
    python tests/engine/with_fake_backend.py -c "import tensorrt"    # code (build.sh's check)

The double stays installed for the life of the process (it ends with the command). `import
tensorrt` finds a stub module holding only __version__: build.sh checks that import first.
"""
from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def install_in_process(version: str = "8.6.0"):
    """A FakeBackend as engine.backend's backend for this whole process."""
    for p in (str(ROOT), str(HERE)):
        if p not in sys.path:
            sys.path.insert(0, p)
    import fake_backend

    from engine.backend import set_backend

    sys.modules.setdefault("tensorrt", types.SimpleNamespace(__version__=version))
    fake = fake_backend.FakeBackend(version)
    set_backend(fake)
    return fake


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: with_fake_backend.py (-m MODULE | -c CODE | SCRIPT) [ARG ...]")
    install_in_process()
    if argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    elif argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path.insert(0, str(Path(argv[0]).resolve().parent))
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
