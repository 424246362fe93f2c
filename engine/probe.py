"""`python -m engine probe --json out.json`: exercise every TensorRT / cuda-python call engine/ uses.

Run first on a GPU host. A tiny ONNX graph with the encoder's I/O names
(speech f32 [B,T,80], speech_lengths i32 [B] -> encoder_out f32, encoder_out_lens i32)
and WeNet-style node scopes (a Conv in /encoder/embed/, a MatMul+swish feed-forward,
a decomposed LayerNorm, a Softmax under self_attn, a Cast/Floor length path) is built
with every BuildConfig knob in turn, run through TrtRunner in both harnesses and
compared with onnxruntime, inspected, calibrated for INT8, evaluated with evaluate.py's
library API. Each feature prints one PASS/FAIL/SKIP line; the JSON is rewritten after
every feature, so a killed run still leaves what it got. A failing feature never stops
the others.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.tiny_model import SHAPES, ort_outputs, tiny_encoder_model, tiny_feeds, write_calibration, write_cases


class Skip(Exception):
    """A feature this TensorRT does not have: reported as SKIP, not FAIL."""


# --- the probe ------------------------------------------------------------------------------
class Probe:
    def __init__(self, json_path: str | Path, work: Path, only: list[str] | None = None) -> None:
        self.json_path = Path(json_path)
        self.work = work
        self.only = only
        self.results: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "python": sys.version.split()[0]}
        self.plans: dict[str, Path] = {}
        self.onnx_path: Path | None = None
        self.refs: dict[tuple[int, int], dict[str, np.ndarray]] = {}

    def write(self) -> None:
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.json_path.with_name(self.json_path.name + ".tmp")
        counts = {s: sum(r["status"] == s for r in self.results) for s in ("PASS", "FAIL", "SKIP")}
        tmp.write_text(json.dumps({**self.meta, "counts": counts, "results": self.results}, indent=1, default=str))
        os.replace(tmp, self.json_path)

    def feature(self, name: str, fn: Callable[[], Any]) -> Any:
        if self.only and not any(name.startswith(o) for o in self.only):
            return None
        t0 = time.monotonic()
        value, status, detail, tb = None, "PASS", "", None
        try:
            value = fn()
            detail = value if isinstance(value, str) else ""
        except Skip as exc:
            status, detail = "SKIP", str(exc)
        except BaseException as exc:  # keep going past anything, even SystemExit from a library
            if isinstance(exc, KeyboardInterrupt):
                raise
            status, detail = "FAIL", f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
            tb = traceback.format_exc(limit=8)
        secs = time.monotonic() - t0
        self.results.append({"feature": name, "status": status, "seconds": round(secs, 2), "detail": detail,
                             **({"traceback": tb} if tb else {})})
        print(f"{status:4} {name} ({secs:.1f} s){': ' + detail if detail else ''}", flush=True)
        self.write()
        return value if status == "PASS" else None

    # helpers
    def build(self, tag: str, check_tol: float | None = 1e-3, exact_lengths: bool = True, **knobs):
        from engine.build import build_engine
        from engine.config import BuildConfig

        if self.onnx_path is None:
            raise RuntimeError("the tiny ONNX was not written (feature 'onnx' failed)")
        onnx_path = knobs.pop("onnx_path", self.onnx_path)
        calibration = knobs.pop("calibration", None)
        timing_cache = knobs.pop("timing_cache", None)
        progress = knobs.pop("progress", False)
        cfg = BuildConfig(model="encoder", **knobs)
        plan = self.work / f"{tag}.plan"
        report = build_engine(onnx_path, cfg, plan, timing_cache=timing_cache, calibration=calibration,
                              log_path=self.work / f"{tag}.build.log", progress=progress)
        self.plans[tag] = plan
        detail = f"{report.build_s:.1f} s, {report.plan_bytes} B, flags {report.flags} cleared {report.flags_cleared}"
        if report.ignored:
            detail += f", ignored {report.ignored}"
        if check_tol is not None:
            detail += ", " + self.check_plan(plan, check_tol, exact_lengths)
        return report, detail

    def check_plan(self, plan: Path, tol: float, exact_lengths: bool = True) -> str:
        from engine.runtime import TrtRunner

        worst, notes = 0.0, []
        with TrtRunner(plan) as runner:
            for shape, ref in self.refs.items():
                out = runner.infer(tiny_feeds(*shape))
                if out["encoder_out"].shape != ref["encoder_out"].shape:
                    raise AssertionError(f"encoder_out shape {out['encoder_out'].shape} != {ref['encoder_out'].shape}")
                if not np.array_equal(out["encoder_out_lens"], ref["encoder_out_lens"]):
                    msg = f"lengths {out['encoder_out_lens'].tolist()} != {ref['encoder_out_lens'].tolist()}"
                    if exact_lengths:
                        raise AssertionError(msg)
                    notes.append(msg)
                diff = float(np.max(np.abs(out["encoder_out"].astype(np.float64) - ref["encoder_out"])))
                if not np.isfinite(diff):
                    raise AssertionError("non-finite output")
                worst = max(worst, diff)
        if worst > tol:
            raise AssertionError(f"max |trt - ort| = {worst:.3g} > {tol:g}")
        return f"max |trt - ort| {worst:.2e}" + (f" ({'; '.join(notes)})" if notes else "")


def run_probe(json_path: str | Path, keep: str | Path | None = None, only: str | None = None) -> list[dict]:
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="engine-probe-"))
    work.mkdir(parents=True, exist_ok=True)
    probe = Probe(json_path, work, [o.strip() for o in only.split(",") if o.strip()] if only else None)
    try:
        _run(probe)
    finally:
        probe.meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        probe.write()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    counts = {s: sum(r["status"] == s for r in probe.results) for s in ("PASS", "FAIL", "SKIP")}
    print(f"probe: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP -> {json_path}")
    return probe.results


def _run(p: Probe) -> None:  # noqa: C901 (one flat list of features reads best)
    from engine.backend import get_backend
    from engine.errors import InputError, PlanError

    backend = get_backend()
    capabilities = backend.capabilities

    # --- environment ---
    def env():
        e = backend.environment()
        p.meta.update(e)
        return (f"TensorRT {e['tensorrt']}, {e['cuda_python']}, {e['gpu']}, runtime {e['cuda_runtime']}, "
                f"driver {e['cuda_driver']}")
    p.feature("env", env)

    def caps():
        c = capabilities()
        p.meta["capabilities"] = c.to_dict()
        return (f"flags {len(c.builder_flags)}, tactic sources {list(c.tactic_sources)}, attrs "
                f"{sorted(c.config_attrs)}, calibrators {sorted(c.calibrators)}, progress monitor "
                f"{c.progress_monitor}")
    p.feature("capabilities", caps)

    def cuda_errors():
        return backend.device().self_test()
    p.feature("cuda.calls", cuda_errors)

    def plugins():
        backend.load_plugins(())
        creators = backend.plugin_creators()
        p.meta["plugin_creators"] = [list(c) for c in creators]
        names = {c[0] for c in creators}
        return f"{len(creators)} creators; CustomSkipLayerNormPluginDynamic {'CustomSkipLayerNormPluginDynamic' in names}"
    p.feature("plugins.registry", plugins)

    # --- the tiny model ---
    def onnx_model():
        import onnx
        model = tiny_encoder_model()
        path = p.work / "tiny_encoder.onnx"
        onnx.save(model, str(path))
        for shape in SHAPES:
            p.refs[shape] = ort_outputs(path, tiny_feeds(*shape))
        p.onnx_path = path
        return f"{path.name}: {len(model.graph.node)} nodes, references for {list(SHAPES)}"
    p.feature("onnx", onnx_model)

    # --- builds ---
    def fp32():
        report, detail = p.build("fp32", 1e-3)
        if "TF32" not in report.flags_cleared and "tf32" not in report.ignored:
            raise AssertionError("TF32 was not cleared for an fp32 build")
        return detail + f", layer info {report.layer_info_path}"
    p.feature("build.fp32", fp32)

    def runtime_io():
        from engine.runtime import TrtRunner
        plan = p.plans.get("fp32")
        if plan is None:
            raise Skip("no fp32 engine")
        with TrtRunner(plan) as r:
            return (f"inputs {r.input_names} {[str(r.dtypes[n]) for n in r.input_names]}, outputs {r.output_names} "
                    f"{[str(r.dtypes[n]) for n in r.output_names]}, profile speech {r.profile_shape('speech')}")
    p.feature("runtime.io", runtime_io)

    def timing(harness):
        def fn():
            from engine.harness import HARNESSES
            from engine.runtime import TrtRunner
            plan = p.plans.get("fp32")
            if plan is None:
                raise Skip("no fp32 engine")
            with TrtRunner(plan, harness=HARNESSES[harness]) as r:
                ms = [r.measure(tiny_feeds(*s)) for s in ((1, 16), (16, 1024))]
            if not all(m.latency_ms > 0 and np.isfinite(m.latency_ms) for m in ms):
                raise AssertionError(f"latencies {ms}")
            return ", ".join(f"{s} {m.latency_ms:.4f} ms (graph {m.cuda_graph}, host {m.host_ms:.4f} ms)"
                             for s, m in zip(("1x16", "16x1024"), ms))
        return fn
    p.feature("runtime.time.serving", timing("serving"))
    p.feature("runtime.time.contest", timing("contest"))

    def runtime_errors():
        from engine.runtime import TrtRunner
        plan = p.plans.get("fp32")
        if plan is None:
            raise Skip("no fp32 engine")
        seen = []
        with TrtRunner(plan) as r:
            good = tiny_feeds(2, 32)
            for label, feeds in (("missing name", {"speech": good["speech"]}),
                                 ("extra name", {**good, "bogus": good["speech_lengths"]}),
                                 ("batch 17 outside profile", tiny_feeds(17, 32)),
                                 ("wrong rank", {**good, "speech": good["speech"][0]}),
                                 ("float lengths", {**good, "speech_lengths": good["speech_lengths"] + 0.5})):
                try:
                    r.infer(feeds)
                except InputError as exc:
                    seen.append(f"{label}: {exc}")
                    continue
                raise AssertionError(f"{label} was accepted")
            r.infer(good)        # still usable after refused feeds
        bad = p.work / "garbage.plan"
        bad.write_bytes(b"not an engine" * 10)
        try:
            TrtRunner(bad)
        except PlanError as exc:
            seen.append(f"garbage plan: {exc}")
        else:
            raise AssertionError("a garbage plan loaded")
        return " | ".join(seen)
    p.feature("runtime.errors", runtime_errors)

    def inspector():
        from engine.build import layer_info_path_for
        from engine.inspect import group_precisions, inspect_plan, layers_of, precision_counts
        plan = p.plans.get("fp32")
        if plan is None:
            raise Skip("no fp32 engine")
        info = inspect_plan(plan)
        layers = layers_of(info)
        if not layers or not isinstance(layers[0], dict):
            raise AssertionError(f"no detailed layers (got {type(layers[0]).__name__ if layers else 'none'})")
        saved = layer_info_path_for(plan)
        p.meta["fp32_layers"] = info
        return (f"{len(layers)} layers, counts {precision_counts(info, 'encoder')}, groups "
                f"{group_precisions('encoder', info)}, saved beside plan: {saved.is_file()}")
    p.feature("inspect", inspector)

    p.feature("build.fp16", lambda: p.build("fp16", 5e-2, fp16=True)[1])
    p.feature("build.tf32", lambda: p.build("tf32", 1e-2, tf32=True)[1])
    # 5 is left out: it segfaults TensorRT 8.6.0 on an H200 even for this tiny graph (bench/diag/trt_abort.py)
    for level in (0, 4):
        p.feature(f"build.opt_level.{level}", lambda lv=level: p.build(f"opt{lv}", 1e-3, opt_level=lv)[1])
    p.feature("build.workspace.64mib", lambda: p.build("ws64", 1e-3, workspace_mib=64)[1])
    for aux in (0, 2):
        p.feature(f"build.max_aux_streams.{aux}", lambda a=aux: p.build(f"aux{a}", 1e-3, max_aux_streams=a)[1])
    p.feature("build.sparse_weights", lambda: p.build("sparse", 1e-3, sparse_weights=True)[1])

    from engine.config import TACTIC_SOURCES
    # each source alone, none (TensorRT's own kernels only), all; missing ones show as "ignored"
    for subset in [[s] for s in TACTIC_SOURCES] + [[], list(TACTIC_SOURCES)]:
        tag = "+".join(subset) if subset else "none"
        p.feature(f"build.tactics.{tag}", lambda s=subset, t=tag: p.build(f"tac_{t}", 1e-3, tactic_sources=s)[1])

    def layer_precision(constraint):
        def fn():
            from engine.inspect import inspect_plan, precision_mismatches
            pins = {"feed_forward": "fp16", "norm": "fp32", "softmax": "fp32"}
            report, detail = p.build(f"lp_{constraint}", 5e-2, fp16=True, layer_precision=pins,
                                     precision_constraints=constraint)
            if report.layer_precision_requests == 0:
                raise AssertionError(f"no layer got a precision (skipped {report.layer_precision_skipped}, "
                                     f"unmatched {report.unmatched_groups})")
            mism = precision_mismatches("encoder", inspect_plan(p.plans[f"lp_{constraint}"]), pins)
            return (detail + f", requests {report.layer_precision_counts}, skipped {report.layer_precision_skipped}"
                    f", mismatches {mism or 'none'}")
        return fn
    p.feature("build.layer_precision.obey", layer_precision("obey"))
    p.feature("build.layer_precision.prefer", layer_precision("prefer"))

    def timing_cache():
        cache = p.work / "probe.timing.cache"
        if cache.exists():
            cache.unlink()
        r1, _ = p.build("tc1", None, timing_cache=cache, fp16=True)
        size1 = cache.stat().st_size if cache.is_file() else 0
        if size1 == 0:
            raise AssertionError(f"timing cache not written ({r1.timing_cache})")
        r2, _ = p.build("tc2", 5e-2, timing_cache=cache, fp16=True)
        if not r2.timing_cache or r2.timing_cache.get("loaded_bytes", 0) != size1:
            raise AssertionError(f"second build did not load the cache: {r2.timing_cache}")
        return (f"first {r1.build_s:.1f} s writes {size1} B, second {r2.build_s:.1f} s loads it; "
                f"{r2.timing_cache}")
    p.feature("build.timing_cache", timing_cache)

    def progress():
        c = capabilities()
        report, detail = p.build("progress", None, progress=True)
        if not c.progress_monitor:
            raise Skip(f"no IProgressMonitor in this TensorRT (elapsed indicator only); build ok in "
                       f"{report.build_s:.1f} s")
        return detail
    p.feature("build.progress", progress)

    def int8(algorithm, tag, **extra):
        def fn():
            c = capabilities()
            if "INT8" not in c.builder_flags or algorithm not in c.calibrators:
                raise Skip(f"no INT8 flag or {algorithm} calibrator in this TensorRT")
            calib = write_calibration(p.work / "calibration-encoder.npz")
            # int8 on random weights: only finite outputs and exact lengths are checked
            report, detail = p.build(tag, 1e9, False, int8=True, calibrator=algorithm, calibration=calib, **extra)
            again, _ = p.build(tag + "_again", None, int8=True, calibrator=algorithm, calibration=calib, **extra)
            used = bool((again.calibration or {}).get("cache_used"))
            return detail + f", calibration {report.calibration}, cache reused on rebuild: {used}"
        return fn
    p.feature("build.int8.entropy2", int8("entropy2", "int8_e2"))
    p.feature("build.int8.minmax", int8("minmax", "int8_mm"))
    p.feature("build.int8.group", int8("entropy2", "int8_group", fp16=True,
                                       layer_precision={"feed_forward": "int8", "softmax": "fp32"}))

    def prepared():
        from engine.prepare import prepare_onnx
        from engine.config import BuildConfig
        if p.onnx_path is None:
            raise Skip("no tiny ONNX")
        prep = prepare_onnx(p.onnx_path, BuildConfig("encoder", passes=["fold_constants", "layernorm"]),
                            p.work / "prepared")
        again = prepare_onnx(p.onnx_path, BuildConfig("encoder", passes=["fold_constants", "layernorm"], fp16=True),
                             p.work / "prepared")
        if not again.cached or again.path != prep.path:
            raise AssertionError("second prepare with the same passes did not reuse the cache")
        report, detail = p.build("prepared", 1e-3, onnx_path=prep.path, passes=["fold_constants", "layernorm"])
        return f"sites {prep.sites}, " + detail
    p.feature("prepare.layernorm_pass", prepared)

    def evaluate():
        from engine.evaluation import evaluate_plan, format_table, rows_json
        plan = p.plans.get("fp32")
        if plan is None or p.onnx_path is None:
            raise Skip("no fp32 engine")
        data = p.work / "data"
        grid = write_cases(data, p.onnx_path)
        out = []
        for mode in ("serving", "contest"):
            cases = evaluate_plan("encoder", plan, data, grid=grid, harness=mode, runs=5)
            bad = [c for c in cases if not c.errors.good]
            if bad:
                raise AssertionError(f"{mode}: Bad cases\n{format_table(rows_json(cases))}")
            out.append(f"{mode}: " + ", ".join(f"{c.batch}x{c.length} {c.latency_ms:.4f} ms" for c in cases))
        return "; ".join(out)
    p.feature("evaluate", evaluate)
