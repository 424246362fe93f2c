"""Minimal reproductions of the TensorRT 8.6.0 build failures seen by the study, one process per case.

    python3.10 bench/diag/trt86_graphs.py --work WORK --json OUT.json [CASE ...]

Each case builds with the plain TensorRT API (the decoder cases with `python -m engine build`,
because the failure needs our prepared graph) and records the exit status, the TensorRT errors
and what it checked. A case that needs WORK/onnx/*.onnx and finds none is "skipped".
  fds_off_tiny        mask Slice(step 2) on bool under a dynamic profile, FASTER_DYNAMIC_SHAPES_0805 off
  fds_off_embed       the encoder's embed + first block (extracted from WORK/onnx/encoder.onnx), preview off
  fds_on_embed        the same subgraph with the preview at its default (on): the control
  fds_off_encoder     the whole exported encoder, preview off
  inspector_tiny      engine inspector JSON of engine/tiny_model.py, parsed strictly (json.loads)
  inspector_embed     the same for the embed + first block subgraph (Myelin foreign nodes)
  int8_pwn            tiny model, INT8 + obey, every feed-forward layer (MatMul, Add, Sigmoid, Mul) int8
  int8_matmul         the control: only the MatMul int8
  scoring_fp32_pin    the decoder config of study trial 10 (norm, softmax, output FP32 + obey over FP16)
  scoring_output_only the same with only the output group pinned FP32
  scoring_no_pass     trial 10's pins without the decoder_scoring pass
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CASES = ("fds_off_tiny", "fds_off_embed", "fds_on_embed", "fds_off_encoder", "inspector_tiny", "inspector_embed",
         "int8_pwn", "int8_matmul", "scoring_fp32_pin", "scoring_output_only", "scoring_no_pass")
PROFILE = {"speech": ((1, 16, 80), (16, 1024, 80), (16, 1024, 80)),
           "speech_lengths": ((1,), (16,), (16,))}
# Study trial 10 of bench/results/study-decoder-contest-h200.json (rules/norms+softmax+output/obey@passes_fp32)
TRIAL10_PASSES = ["fold_constants", "layernorm", "attention_mask", "ffn_2d_matmul", "merge_qkv", "pos_enc_slice",
                  "static_dims", "decoder_masks", "decoder_scoring", "memory_kv_once", "bool_slice"]
TRIAL10_PINS = {"softmax": "fp32", "embedding": "fp16", "self_attention": "fp16", "cross_attention": "fp16",
                "feed_forward": "fp16", "norm": "fp32", "output": "fp32"}


def tiny_mask_slice_model():
    """speech [B,T,80], speech_lengths [B] -> a bool mask [B,1,T] sliced [:, :, 2::2] twice (as WeNet's
    Conv2dSubsampling4 does), applied to a MatMul of the sliced features: Myelin takes the region."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    n = helper.make_node
    c = lambda name, v: numpy_helper.from_array(np.asarray(v), name)  # noqa: E731
    inits = [c("ax1", np.array([1], np.int64)),
             c("zero", np.array(0, np.int64)), c("one", np.array(1, np.int64)),
             c("s2", np.array([2], np.int64)), c("big", np.array([1 << 30], np.int64)),
             c("ax2", np.array([2], np.int64)), c("st2", np.array([2], np.int64)),
             c("w", (np.random.default_rng(0).standard_normal((80, 80)) / 9).astype(np.float32))]
    nodes = [
        n("Shape", ["speech"], ["shp"]), n("Gather", ["shp", "one"], ["t"], axis=0),
        n("Range", ["zero", "t", "one"], ["ar"]),
        n("Cast", ["speech_lengths"], ["len64"], to=TensorProto.INT64),
        n("Unsqueeze", ["len64", "ax1"], ["len2"]), n("Less", ["ar", "len2"], ["m"]),           # [B,T] bool
        n("Unsqueeze", ["m", "ax1"], ["mask"]),                                                 # [B,1,T]
        n("Slice", ["mask", "s2", "big", "ax2", "st2"], ["mask2"], name="/encoder/embed/Slice"),
        n("Slice", ["mask2", "s2", "big", "ax2", "st2"], ["mask4"], name="/encoder/embed/Slice_1"),
        n("Slice", ["speech", "s2", "big", "ax1", "st2"], ["x2"]),
        n("Slice", ["x2", "s2", "big", "ax1", "st2"], ["x4"]),
        n("MatMul", ["x4", "w"], ["h"]),
        n("Cast", ["mask4"], ["mf"], to=TensorProto.FLOAT),
        n("Transpose", ["mf"], ["mft"], perm=[0, 2, 1]), n("Mul", ["h", "mft"], ["out"]),
        n("Cast", ["mask4"], ["mask_out"], to=TensorProto.INT32),
    ]
    g = helper.make_graph(nodes, "mask_slice", [
        helper.make_tensor_value_info("speech", TensorProto.FLOAT, ["B", "T", 80]),
        helper.make_tensor_value_info("speech_lengths", TensorProto.INT32, ["B"])], [
        helper.make_tensor_value_info("out", TensorProto.FLOAT, ["B", "T4", 80]),
        helper.make_tensor_value_info("mask_out", TensorProto.INT32, ["B", 1, "T4"])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def numpy_helper_weight(model):
    """The MatMul weight of tiny_mask_slice_model (for the CPU test's reference)."""
    from onnx import numpy_helper
    return next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "w")


def embed_subgraph(encoder_onnx: Path, out: Path) -> Path:
    """The encoder from its inputs to the output of the first conformer block (embed + encoders.0)."""
    import numpy as np
    import onnx
    import onnx_graphsurgeon as gs
    graph = gs.import_onnx(onnx.load(str(encoder_onnx)))
    block0 = [nd for nd in graph.nodes if nd.name.startswith("/encoder/encoders.0/")]
    if not block0:
        raise SystemExit(f"no /encoder/encoders.0/ node in {encoder_onnx}")
    last = block0[-1].outputs[0]
    last.dtype = last.dtype or np.float32
    graph.outputs = [last]
    graph.cleanup().toposort()
    onnx.save(gs.export_onnx(graph), str(out))
    return out


def build(onnx_path: Path, *, fds=None, detailed=False, int8_layers=None):
    """Parse and build with one dynamic profile; returns (engine bytes or None, TensorRT error lines)."""
    import tensorrt as trt

    class Errors(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.lines = []

        def log(self, severity, msg):
            if severity <= trt.ILogger.Severity.ERROR:
                self.lines.append(msg)

    logger = Errors()
    b = trt.Builder(logger)
    net = b.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(net, logger)
    if not parser.parse(onnx_path.read_bytes()):
        return None, [str(parser.get_error(i)) for i in range(parser.num_errors)]
    cfg = b.create_builder_config()
    prof = b.create_optimization_profile()
    for i in range(net.num_inputs):
        name = net.get_input(i).name
        prof.set_shape(name, *PROFILE[name])
    cfg.add_optimization_profile(prof)
    if fds is not None:
        cfg.set_preview_feature(trt.PreviewFeature.FASTER_DYNAMIC_SHAPES_0805, fds)
    if detailed:
        cfg.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if int8_layers is not None:
        cfg.set_flag(trt.BuilderFlag.INT8)
        cfg.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        for i in range(net.num_inputs):
            if net.get_input(i).dtype == trt.float32:
                net.get_input(i).set_dynamic_range(-8.0, 8.0)
        for li in range(net.num_layers):   # explicit ranges everywhere: no calibrator in the way
            layer = net.get_layer(li)
            for j in range(layer.num_outputs):
                if layer.get_output(j).dtype == trt.float32 and layer.type != trt.LayerType.CONSTANT:
                    layer.get_output(j).set_dynamic_range(-8.0, 8.0)
            if layer.type != trt.LayerType.CONSTANT and any(s in layer.name for s in int8_layers):
                layer.precision = trt.int8
                for j in range(layer.num_outputs):
                    if not layer.get_output(j).is_network_output:
                        layer.set_output_type(j, trt.int8)
    data = b.build_serialized_network(net, cfg)
    return (bytes(memoryview(data)) if data is not None else None), logger.lines


def inspector_check(plan: bytes) -> dict:
    """Strict json.loads of the inspector's JSON; where it stops and the raw control characters it holds."""
    import tensorrt as trt
    rt = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    engine = rt.deserialize_cuda_engine(plan)
    text = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    out = {"chars": len(text), "strict_json": "ok",
           "control_chars": len(re.findall(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", text))}   # never JSON whitespace
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        out["strict_json"] = f"{exc.msg} at char {exc.pos}"
        out["context"] = repr(text[max(0, exc.pos - 60):exc.pos + 10])
    return out


def decoder_case(case: str, work: Path) -> dict:
    """Our own builder on the prepared decoder (the failure needs the passes' graph)."""
    import yaml
    passes = [p for p in TRIAL10_PASSES if case != "scoring_no_pass" or p != "decoder_scoring"]
    pins = dict(TRIAL10_PINS)
    if case == "scoring_output_only":
        pins = {g: ("fp32" if g == "output" else "fp16") for g in pins}
    cfg = {"model": "decoder", "passes": passes, "fp16": True, "layer_precision": pins,
           "precision_constraints": "obey", "workspace_mib": 4096, "opt_level": 3, "max_batch": 16,
           "layout": "single", "contest_profile": True}
    d = Path(tempfile.mkdtemp())
    (d / "decoder.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "engine", "build", "--config", str(d / "decoder.yaml"),
                        "--onnx", str(work / "onnx" / "decoder.onnx"), "--out", str(d / "decoder.plan"),
                        "--work-dir", str(work), "--no-progress", "--no-layer-info"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    err = [ln for ln in r.stderr.splitlines() if "Could not find" in ln or ln.startswith("error")]
    return {"built": r.returncode == 0, "config": cfg, "errors": err[-2:]}


def run_case(case: str, work: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    import onnx
    d = Path(tempfile.mkdtemp())
    if case.startswith("scoring"):
        return decoder_case(case, work)
    if case.endswith("_tiny") or case.startswith("int8"):
        if case == "fds_off_tiny":
            onnx.save(tiny_mask_slice_model(), str(d / "t.onnx"))
        else:
            from engine.tiny_model import tiny_encoder_model
            onnx.save(tiny_encoder_model(), str(d / "t.onnx"))
        path = d / "t.onnx"
    elif case.endswith("_embed"):
        path = embed_subgraph(work / "onnx" / "encoder.onnx", d / "embed.onnx")
    else:
        path = work / "onnx" / "encoder.onnx"
    fds = False if case.startswith("fds_off") else None
    int8 = {"int8_pwn": ["feed_forward/"], "int8_matmul": ["w_1/MatMul"]}.get(case)
    plan, errors = build(path, fds=fds, detailed=case.startswith("inspector"), int8_layers=int8)
    out = {"built": plan is not None, "errors": errors[-2:]}
    if plan is not None and case.startswith("inspector"):
        out["inspector"] = inspector_check(plan)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description="TensorRT 8.6.0 build failures, one process per case")
    ap.add_argument("--work", default="work", help="work folder with onnx/encoder.onnx, onnx/decoder.onnx")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    work = Path(args.work).resolve()
    if args.case:
        print("RESULT " + json.dumps(run_case(args.case, work)))
        return 0
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        print(f"error: unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}", file=sys.stderr)
        return 2
    results = {}
    for case in args.cases:
        needs = "decoder.onnx" if case.startswith("scoring") else "encoder.onnx"
        if ("embed" in case or "encoder" in case or "scoring" in case) and not (work / "onnx" / needs).is_file():
            results[case] = {"returncode": None, "skipped": f"no {work / 'onnx' / needs}"}
            continue
        try:
            r = subprocess.run([sys.executable, __file__, "--work", str(work), "--case", case],
                               capture_output=True, text=True, timeout=900)
            rc, text = r.returncode, r.stdout + r.stderr
        except subprocess.TimeoutExpired as exc:
            rc, text = "timeout", str(exc.stdout or "")
        found = [ln[7:] for ln in text.splitlines() if ln.startswith("RESULT ")]
        res = {"returncode": rc, **(json.loads(found[-1]) if found else {})}
        if not found:
            res["tail"] = [ln for ln in text.splitlines() if "[TRT] [W]" not in ln][-3:]
        results[case] = res
        print(case, rc, json.dumps({k: v for k, v in res.items() if k != "config"})[:300], flush=True)
    if args.json:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from bench_common import write_diag_record
        write_diag_record(args.json, results, cases={c: CASES.index(c) for c in results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
