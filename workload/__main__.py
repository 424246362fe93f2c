"""CLI: `python -m workload {export,data,checkpoint,cases,spec} ...` (see --help of each).

export, data and checkpoint are the WeNet models'; cases and spec take any workload spec
(`--workload PATH`, or a shipped name).

Bad input gives one line `error: ...` on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from workload import shapes
from workload.errors import OneLineError, OneLineParser, WorkloadError, report


def _models(text: str) -> tuple[str, ...]:
    models = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in models if m not in shapes.MODELS]
    if bad or not models:
        raise WorkloadError(f"--models {text!r}: expected a comma list of {', '.join(shapes.MODELS)}")
    return models


def _config(name: str):
    from workload.model_config import ModelConfig
    return ModelConfig.by_name(name)


def _checkpoint(path: str | None) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise WorkloadError(f"checkpoint {p} does not exist")
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="aishell", choices=("aishell", "tiny"),
                   help="model size: the contest's AISHELL-1 conformer (default) or the tiny test model")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default 0); ignored where --checkpoint is given")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m workload", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p = sub.add_parser("export", help="export encoder.onnx / decoder.onnx",
                       description="Export the models to OUT/{encoder,decoder}.onnx (onnx.checker-verified).")
    p.add_argument("--out", default="work/onnx", help="output folder (default work/onnx)")
    p.add_argument("--style", default="contest", choices=("contest", "modern"),
                   help="contest: opset 13, decomposed LayerNorm (default); modern: opset 17, LayerNormalization")
    p.add_argument("--checkpoint", help="WeNet-style state_dict .pt to load instead of seeded weights")
    p.add_argument("--models", default="encoder,decoder", help="comma list (default encoder,decoder)")
    _common(p)

    p = sub.add_parser("data", help="write test cases and calibration sets with PyTorch references",
                       description="Write encoder-/decoder-{bs}-{sl}.npz for the grid and calibration-*.npz.")
    p.add_argument("--out", default="work/data", help="output folder (default work/data)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="reference device (default cpu)")
    p.add_argument("--grid", help="BATCHxFRAMES comma list, e.g. 1x16,4x64 (default: the full test grid "
                                  + ",".join(f"{b}x{t}" for b, t in shapes.GRID) + ")")
    p.add_argument("--checkpoint", help="WeNet-style state_dict .pt (use the same one as for export)")
    p.add_argument("--no-calibration", action="store_true", help="skip calibration-*.npz")
    _common(p)

    p = sub.add_parser("checkpoint", help="write a checkpoint of the seeded weights",
                       description="Write the seeded model's state_dict as a WeNet-style checkpoint.")
    p.add_argument("--out", required=True, help="output .pt path")
    _common(p)

    p = sub.add_parser("cases", help="a workload's test cases: random inputs, onnxruntime references",
                       description="Write <name>-<batch>-<length>.npz for the spec's grid (inputs drawn as the "
                                   "spec says, reference outputs from the original ONNX in onnxruntime) and "
                                   "calibration-<name>.npz.")
    p.add_argument("--workload", required=True, help="workload spec YAML (or a shipped name)")
    p.add_argument("--out", help="output folder (default: the spec's cases.folder)")
    p.add_argument("--onnx", help="the ONNX to take references from (default: the spec's onnx)")
    p.add_argument("--grid", help="BATCHxLENGTH comma list (default: the spec's full grid)")
    p.add_argument("--seed", type=int, help="input seed (default: the spec's cases.seed)")
    p.add_argument("--no-calibration", action="store_true", help="skip calibration-<name>.npz")
    p.add_argument("--work-dir", default="work", help="what {work_dir} in the spec stands for (default work)")

    p = sub.add_parser("spec", help="check a workload spec and print it (or one field, for scripts)",
                       description="Load and validate a spec; print its name, files, tensors and grid, or "
                                   "with --get one of: " + ", ".join(SPEC_FIELDS) + ".")
    p.add_argument("--workload", required=True, help="workload spec YAML (or a shipped name)")
    p.add_argument("--get", choices=SPEC_FIELDS, help="print this field only")
    p.add_argument("--work-dir", default="work", help="what {work_dir} in the spec stands for (default work)")
    return parser


SPEC_FIELDS = ("name", "study", "onnx", "export", "cases")


def _spec_field(spec, field: str, work_dir: str) -> str:
    return {"name": spec.name, "study": spec.study, "onnx": str(spec.onnx_path(work_dir)),
            "export": spec.export_command(work_dir) or "", "cases": str(spec.cases_dir(work_dir))}[field]


def _cmd_spec(args) -> None:
    from workload.registry import resolve

    spec = resolve(args.workload)
    if args.get:
        print(_spec_field(spec, args.get, args.work_dir))
        return
    print(f"{spec.name}: {spec.description or '(no description)'} ({spec.source})")
    print(f"  onnx {spec.onnx_path(args.work_dir)}; studies {spec.study}-<harness>")
    print(f"  batch {spec.batch.min}..{spec.batch.max}, length {spec.length.min}..{spec.length.max}")
    for kind, tensors in (("input", spec.inputs), ("output", spec.outputs)):
        for t in tensors:
            dims = ", ".join("?" if d.text is None else str(d.text) for d in t.dims or ())
            limits = "" if kind == "input" else f"  {t.metric} max_abs {t.max_abs} max_rel {t.max_rel}"
            print(f"  {kind} {t.name} [{dims}]" + (f" {t.dtype}" if kind == "input" else "") + limits)
    print(f"  grid {','.join(f'{b}x{t}' for b, t in spec.grid.judged)}"
          + (f" (+ stress {','.join(f'{b}x{t}' for b, t in spec.grid.stress)})" if spec.grid.stress else ""))
    groups = "by op type" if spec.layer_groups.by_op_type else ", ".join(g for g, _ in spec.layer_groups.patterns)
    print(f"  layer groups {groups}; cases {spec.cases_dir(args.work_dir)}"
          + (" (generated)" if spec.cases.generate else ""))


def _cmd_cases(args) -> None:
    from workload.cases import parse_cases, write_cases
    from workload.registry import resolve

    spec = resolve(args.workload)
    grid = parse_cases(args.grid) if args.grid else None
    out = args.out or spec.cases_dir(args.work_dir)
    written = write_cases(spec, out, args.onnx or spec.onnx_path(args.work_dir), grid, args.seed,
                          calibration=not args.no_calibration)
    print(f"wrote {len(written)} files to {out}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("cases", "spec"):
            (_cmd_cases if args.command == "cases" else _cmd_spec)(args)
            return 0
        if args.seed < 0:
            raise WorkloadError(f"--seed {args.seed} must be non-negative")
        config = _config(args.config)
        if args.command == "export":
            from workload.export import export_all
            models = _models(args.models)
            start = time.perf_counter()
            paths = export_all(args.out, args.style, models, config, _checkpoint(args.checkpoint), args.seed)
            for m, path in paths.items():
                print(f"{m}: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
            print(f"exported in {time.perf_counter() - start:.1f} s")
        elif args.command == "data":
            from workload.data import generate, parse_data_grid
            grid = parse_data_grid(args.grid) if args.grid else shapes.GRID
            written = generate(args.out, grid, args.device, args.seed, _checkpoint(args.checkpoint), config,
                               calibration=not args.no_calibration)
            print(f"wrote {len(written)} files to {args.out}")
        else:
            from workload.checkpoint import save_checkpoint
            print(save_checkpoint(args.out, config, args.seed))
    except OneLineError as exc:
        return report(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
