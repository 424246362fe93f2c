"""Run a command with the strict fake TensorRT (fake_trt.py) installed, for CPU tests of whole CLIs:

    python tests/engine/with_fake_trt.py -m engine build ...     # a module, like python -m
    python tests/engine/with_fake_trt.py evaluate.py ...         # a script
    python tests/engine/with_fake_trt.py -c "import tensorrt"    # code (build.sh's check)

The fakes stay installed for the life of the process (it ends with the command).
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


class _Patch:
    """What fake_trt.install needs of pytest's monkeypatch (this process ends with the command)."""

    @staticmethod
    def setitem(mapping, key, value) -> None:
        mapping[key] = value

    @staticmethod
    def setattr(obj, name, value) -> None:
        setattr(obj, name, value)


def install_in_process(version: str = "8.6.0"):
    """fake_trt.install for a whole process: (trt, cudart)."""
    for p in (str(ROOT), str(HERE)):
        if p not in sys.path:
            sys.path.insert(0, p)
    import fake_trt

    return fake_trt.install(_Patch(), version)


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: with_fake_trt.py (-m MODULE | -c CODE | SCRIPT) [ARG ...]")
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
