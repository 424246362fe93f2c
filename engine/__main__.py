"""CLI: `python -m engine {build,check,inspect,probe} ...` (see --help of each).

    python -m engine build --config configs/encoder.yaml --onnx work/onnx/encoder.onnx --out encoder.plan
    python -m engine build --baseline --model decoder --onnx work/onnx/decoder.onnx --out decoder.plan
    python -m engine check --config configs/encoder.yaml --onnx work/onnx/encoder.onnx   # no TensorRT needed
    python -m engine inspect encoder.plan --model encoder
    python -m engine build --baseline --workload my-model.yaml --onnx my.onnx --out my.plan
    python -m engine probe --json probe.json

Bad input gives one line `error: ...` on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from engine.errors import EngineError
from workload.errors import OneLineError, OneLineParser, report


def _build_options(b: argparse.ArgumentParser, onnx_required: bool = True) -> None:
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="BuildConfig YAML (e.g. configs/encoder.yaml)")
    src.add_argument("--baseline", action="store_true", help="the naive baseline config (needs --model)")
    b.add_argument("--model", help="model of --baseline: a registered workload, encoder or decoder (checked "
                                   "against --config)")
    b.add_argument("--workload", help="workload spec YAML of a model of your own (its name is the model)")
    b.add_argument("--onnx", required=onnx_required, help="exported ONNX (before passes), e.g. work/onnx/encoder.onnx")
    b.add_argument("--out", required=onnx_required, help="engine file to write, e.g. encoder.plan")
    b.add_argument("--timing-cache", help="timing cache file: read if present, updated after the build")
    b.add_argument("--calibration", help="calibration npz for INT8 (default WORK/data/calibration-MODEL.npz "
                                         "when the config uses int8)")
    b.add_argument("--plugins", nargs="*", default=[], help="plugin libraries (.so) to load first")
    b.add_argument("--work-dir", default="work", help="work folder for prepared ONNX files (default work)")
    b.add_argument("--log", help="TensorRT build log (default: next to --out, .build.log)")
    b.add_argument("--no-progress", action="store_true", help="no elapsed-time line while building")
    b.add_argument("--no-layer-info", action="store_true", help="skip the inspector's .layers.json")
    b.add_argument("--report", help="also write the build report (settings, profiles, ignored knobs, "
                                    "rewrite sites, times) as JSON here")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m engine", description="TensorRT engines: build, inspect, probe.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    b = sub.add_parser("build", help="prepare the ONNX (passes, plugins) and build an engine",
                       description="Apply the config's passes and plugin rewrites (cached in WORK/prepared), "
                                   "build the engine and write PLAN plus PLAN's .layers.json. Every input and "
                                   "output path is checked first (as `check` does).")
    _build_options(b)
    c = sub.add_parser("check", help="check a build's inputs without building (no TensorRT needed)",
                       description="What `build` with the same options would fail on before building: the config "
                                   "(types, names, rewrites), the ONNX (readable, the model's, every layer_precision "
                                   "group matching a node) when --onnx is given, calibration data, plugin libraries "
                                   "and output paths. Writes nothing.")
    _build_options(c, onnx_required=False)

    i = sub.add_parser("inspect", help="per-layer precisions of an engine",
                       description="Run the engine inspector and summarize precisions (per group with --model).")
    i.add_argument("plan", help="engine file")
    i.add_argument("--model", help="also count per layer group: encoder, decoder or a --workload's name")
    i.add_argument("--workload", help="workload spec YAML (registers its model name)")
    i.add_argument("--plugins", nargs="*", default=[], help="plugin libraries (.so) to load first")
    i.add_argument("--json", help="write the inspector's JSON here")

    p = sub.add_parser("probe", help="check every TensorRT / cuda-python call on a tiny graph",
                       description="Build and run a tiny ONNX graph with every BuildConfig knob in turn; one "
                                   "PASS/FAIL/SKIP line per feature; JSON written after every feature.")
    p.add_argument("--json", required=True, help="where to write the results")
    p.add_argument("--keep", help="folder to keep the tiny models, engines and caches in (default: a temp dir)")
    p.add_argument("--only", help="comma list of feature-name prefixes to run")
    return parser


def _checked(args):
    """(config, calibration path or None, log path): every input and output of the build checked, nothing written."""
    from engine.build import layer_info_path_for
    from engine.config import BuildConfig, baseline
    from engine.prepare import check_build, check_rewrites
    from plugins.library import check_plugin_library
    from workload.data import check_calibration
    from workload.outputs import check_output_dir, check_output_file

    if args.baseline:
        if not args.model:
            raise EngineError("--baseline needs --model (encoder, decoder or a --workload's name)")
        config = baseline(args.model)
    else:
        config = BuildConfig.load(args.config)
        if args.model and args.model != config.model:
            raise EngineError(f"--model {args.model} but {args.config} is a {config.model} config")
    if args.onnx:
        from workload.registry import bind_onnx
        bind_onnx(config.model, args.onnx)      # layer groups by op type are read from this graph
        config.validate()                       # its groups known now
        check_build(config, args.onnx)
    else:
        check_rewrites(config)
    work = Path(args.work_dir)
    calibration = None
    if config.uses_int8:
        calibration = Path(args.calibration) if args.calibration else work / "data" / f"calibration-{config.model}.npz"
        if not calibration.is_file():
            raise EngineError(f"{config.model} config uses int8 but calibration file {calibration} does not exist "
                              f"(write it with `python -m workload data`)")
        check_calibration(calibration, config.model)
    elif args.calibration:
        print(f"note: {config.model} config uses no int8; --calibration is not used", file=sys.stderr)
    for lib in args.plugins:
        check_plugin_library(lib)
    out = Path(args.out) if args.out else None
    log_path = Path(args.log) if args.log else (out.with_name(out.stem + ".build.log") if out else None)
    for path, what in ((out, "engine file"), (log_path, "build log"), (args.timing_cache, "timing cache"),
                       (args.report, "build report"), (out and layer_info_path_for(out), "layer information file")):
        if path:
            check_output_file(path, what)
    if config.passes or config.plugins:
        check_output_dir(work / "prepared", "prepared-ONNX cache")
    return config, calibration, log_path


def _cmd_check(args) -> int:
    config, _, _ = _checked(args)
    print(f"{config.model} build inputs ok")
    return 0


def _cmd_build(args) -> int:
    from engine.build import build_engine
    from engine.backend import get_backend
    from engine.prepare import prepare_onnx

    config, calibration, log_path = _checked(args)
    get_backend().version()                 # TensorRTMissing before anything is written
    out = Path(args.out)
    t0 = time.monotonic()
    prepared = prepare_onnx(args.onnx, config, Path(args.work_dir) / "prepared")
    prepare_s = time.monotonic() - t0
    if prepared.sites:
        print("rewrites: " + ", ".join(f"{k} {v}" for k, v in prepared.sites.items()), file=sys.stderr)
    report = build_engine(prepared.path, config, out, timing_cache=args.timing_cache, calibration=calibration,
                          plugin_libs=args.plugins, log_path=log_path, progress=not args.no_progress,
                          layer_info=not args.no_layer_info)
    print(f"{out}: {report.plan_bytes / 2**20:.1f} MiB in {report.build_s:.1f} s "
          f"(TensorRT {report.tensorrt}, flags {','.join(report.flags) or 'none'}"
          f"{', cleared ' + ','.join(report.flags_cleared) if report.flags_cleared else ''}; log {log_path})")
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps({**report.to_dict(), "sites": prepared.sites,
                                                 "prepare_s": prepare_s, "config": config.to_dict()},
                                                indent=1, default=str))
    for knob, why in report.ignored.items():
        print(f"warning: {knob} ignored: {why}", file=sys.stderr)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _cmd_inspect(args) -> int:
    from engine.inspect import inspect_plan, save_layer_info, summary_lines
    from engine.plan_file import check_plan_file
    from plugins.library import check_plugin_library
    from workload.outputs import check_output_file
    from workload.registry import get

    if args.model:
        get(args.model)                         # an unknown name is one line, before the engine loads

    check_plan_file(args.plan)
    for lib in args.plugins:
        check_plugin_library(lib)
    if args.json:
        check_output_file(args.json, "inspector JSON")
    info = inspect_plan(args.plan, plugin_libs=args.plugins)
    if args.json:
        save_layer_info(info, args.json)
    print("\n".join(summary_lines(info, args.model)))
    return 0


def _cmd_probe(args) -> int:
    from engine.backend import get_backend
    from engine.probe import run_probe
    from workload.outputs import check_output_dir, check_output_file

    check_output_file(args.json, "probe results")
    if args.keep:
        check_output_dir(args.keep, "--keep folder")
    backend = get_backend()                 # without TensorRT every feature would FAIL: say so once
    backend.version()
    backend.device()

    results = run_probe(args.json, keep=args.keep, only=args.only)
    return 0 if all(r["status"] != "FAIL" for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbs = {"build": _cmd_build, "check": _cmd_check, "inspect": _cmd_inspect, "probe": _cmd_probe}
    try:
        workload = getattr(args, "workload", None)
        if workload:
            from workload.registry import resolve
            spec = resolve(workload)
            if args.model and args.model != spec.name:
                raise EngineError(f"--model {args.model} but --workload {workload} is {spec.name!r}")
            args.model = spec.name
        return verbs[args.command](args)
    except OneLineError as exc:
        return report(exc)


if __name__ == "__main__":
    sys.exit(main())
