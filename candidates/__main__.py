"""CLI: `python -m candidates list [--model M]` and `python -m candidates apply IN OUT --passes a,b [--model M]`.

Graph passes only: `python -m plugins` is the same CLI over passes and plugin rewrites (plugins/
depends on candidates/, not the other way round). Bad input gives one line `error: ...` on stderr and
exit status 2; nothing is written.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from workload.errors import OneLineError, OneLineParser, report
from workload.shapes import MODELS


def _parser(prog: str) -> argparse.ArgumentParser:
    p = OneLineParser(prog=prog, description="ONNX graph passes for the WeNet models")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=OneLineParser)
    ls = sub.add_parser("list", help="list the registered passes (python -m plugins: and plugin rewrites)")
    ls.add_argument("--model", choices=MODELS)
    ap = sub.add_parser("apply", help="apply passes to an ONNX file")
    ap.add_argument("input", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--passes", required=True, help="comma-separated pass names, applied in this order")
    ap.add_argument("--model", choices=MODELS, help="reject passes that do not apply to this model")
    ap.add_argument("--strict", action="store_true", help="fail when a pass finds no site")
    return p


def _list(model: str | None, kinds: tuple[str, ...]) -> None:
    from candidates.framework import available, get_pass
    for kind in kinds:
        for name in available(model, kind):
            p = get_pass(name)
            print(f"{name:28s} {kind:6s} {','.join(p.models):16s} {p.summary}")


def _apply(args, kinds: tuple[str, ...]) -> None:
    import onnx

    from candidates.framework import PassError, resolve_passes, run_passes
    from workload.outputs import check_output_file

    if not args.input.is_file():
        raise PassError(f"{args.input} does not exist")
    names = [n.strip() for n in args.passes.split(",") if n.strip()]
    if not names:
        raise PassError("--passes is empty")
    # unknown names, repeats, rewrites of another kind and wrong-model passes fail before any work
    kind_of = {}
    for p in resolve_passes(names, model_name=args.model):
        if p.kind not in kinds:
            raise PassError(f"{p.name} is a {p.kind} rewrite: use python -m plugins apply")
        kind_of[p.name] = p.kind
    check_output_file(args.output, "output ONNX file")
    try:
        model = onnx.load(str(args.input))
    except Exception as exc:
        raise PassError(f"{args.input}: not an ONNX model ({type(exc).__name__})") from None
    # passes and plugin rewrites may be mixed on the command line; each runs as its kind
    sites: dict[str, int] = {}
    for name in names:
        model, s = run_passes(model, [name], kind=kind_of[name], strict=args.strict, model_name=args.model)
        sites.update(s)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.output))
    for name, n in sites.items():
        print(f"{name}: {n} site(s)")


def main(argv: list[str] | None = None, prog: str = "python -m candidates",
         kinds: tuple[str, ...] = ("pass",)) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = _parser(prog).parse_args(argv)
    try:
        if args.cmd == "list":
            _list(args.model, kinds)
        else:
            _apply(args, kinds)
    except OneLineError as exc:
        return report(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
