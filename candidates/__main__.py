"""CLI: `python -m candidates list [--model M]` and `python -m candidates apply IN OUT --passes a,b [--model M]`.

Bad input gives one line `error: ...` on stderr and exit status 2; nothing is written.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from workload.errors import OneLineError, report
from workload.shapes import MODELS


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other bad input."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {self.prog}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m candidates", description="ONNX graph passes for the WeNet models")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    ls = sub.add_parser("list", help="list the registered passes (and plugin rewrites)")
    ls.add_argument("--model", choices=MODELS)
    ap = sub.add_parser("apply", help="apply passes to an ONNX file")
    ap.add_argument("input", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--passes", required=True, help="comma-separated pass names, applied in this order")
    ap.add_argument("--model", choices=MODELS, help="reject passes that do not apply to this model")
    ap.add_argument("--strict", action="store_true", help="fail when a pass finds no site")
    return p


def _list(model: str | None) -> None:
    from candidates.framework import PLUGIN, available, get_pass
    try:
        import plugins  # noqa: F401  (registers the plugin rewrites)
    except ImportError:
        pass
    for kind in ("pass", PLUGIN):
        for name in available(model, kind):
            p = get_pass(name)
            print(f"{name:28s} {kind:6s} {','.join(p.models):16s} {p.summary}")


def _apply(args) -> None:
    import onnx

    from candidates.framework import PassError, resolve_passes, run_passes
    from workload.outputs import check_output_file

    if not args.input.is_file():
        raise PassError(f"{args.input} does not exist")
    names = [n.strip() for n in args.passes.split(",") if n.strip()]
    if not names:
        raise PassError("--passes is empty")
    try:
        import plugins  # noqa: F401
    except ImportError:
        pass
    # unknown names, repeats and wrong-model passes fail before any work
    kinds = {p.name: p.kind for p in resolve_passes(names, model_name=args.model)}
    check_output_file(args.output, "output ONNX file")
    try:
        model = onnx.load(str(args.input))
    except Exception as exc:
        raise PassError(f"{args.input}: not an ONNX model ({type(exc).__name__})") from None
    # passes and plugin rewrites may be mixed on the command line; each runs as its kind
    sites: dict[str, int] = {}
    for name in names:
        model, s = run_passes(model, [name], kind=kinds[name], strict=args.strict, model_name=args.model)
        sites.update(s)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.output))
    for name, n in sites.items():
        print(f"{name}: {n} site(s)")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "list":
            _list(args.model)
        else:
            _apply(args)
    except OneLineError as exc:
        return report(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
