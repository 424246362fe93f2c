"""bench/ scripts: the GPU slug, the TensorRT baseline run on the fake TensorRT, the torch baselines on CPU."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE_TESTS = ROOT / "tests" / "engine"
if str(ENGINE_TESTS) not in sys.path:
    sys.path.insert(0, str(ENGINE_TESTS))


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod                     # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name,slug", [("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H200", "h200"),
                                       ("NVIDIA A30", "a30"), ("Tesla T4", "t4"), ("NVIDIA L40S", "l40s"),
                                       ("NVIDIA GeForce RTX 4090", "rtx-4090"), ("", "unknown")])
def test_gpu_slug(name, slug):
    assert load("bench_common").gpu_slug(name) == slug


class _Done:
    """A finished build process, for builds the test runs in-process on the fake TensorRT."""
    def __init__(self, rc):
        self.returncode, self.pid = rc, -1

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        return self.returncode


ONLY = "naive fp32,per_batch fp32"


def test_layouts_on_the_fake(monkeypatch, tmp_path, capsys):
    import types

    import fake_backend
    import onnx

    import engine.cuda_runtime

    from engine.__main__ import main as engine_main
    from engine.tiny_model import tiny_encoder_model, write_cases

    fake_backend.install(monkeypatch)
    # bench/layouts.py asks engine.trt_compat / engine.cuda_runtime for the version and GPU directly
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.0"))
    monkeypatch.setattr(engine.cuda_runtime, "gpu_name", lambda: "Fake GPU H100")
    layouts = load("layouts")
    work, out = tmp_path / "work", tmp_path / "out"
    (work / "onnx").mkdir(parents=True)
    onnx.save(tiny_encoder_model(), str(work / "onnx" / "encoder.onnx"))
    write_cases(work / "data", work / "onnx" / "encoder.onnx", shapes=[(1, 16), (4, 64)])
    (work / "data" / ".complete").write_text("")

    def start_inline(job, work_dir, plugin_libs):     # the real script starts `python -m engine build` processes
        rc = engine_main(["build", "--config", str(job.config_path), "--onnx", str(work_dir / "onnx" / "encoder.onnx"),
                          "--out", str(job.plan), "--timing-cache", str(work_dir / "timing-encoder.cache"),
                          "--work-dir", str(work_dir), "--log", str(job.log), "--no-progress",
                          "--report", str(job.report)])
        job.proc, job.status, job.started = _Done(rc), "running", 0.0
    monkeypatch.setattr(layouts, "start", start_inline)
    monkeypatch.setattr(layouts.time, "sleep", lambda s: None)
    rc = layouts.main(["--work", str(work), "--out", str(out), "--models", "encoder",
                       "--only", ONLY, "--runs", "2", "--warmup", "0"])
    assert rc == 0
    result = json.loads((out / "layouts-h100.json").read_text())
    assert result["finished"] and result["gpu"] == "Fake GPU H100"
    assert {(b["label"], b["status"]) for b in result["builds"]} == {("naive fp32", "built"), ("per_batch fp32", "built")}
    per_batch = next(b for b in result["builds"] if b["label"] == "per_batch fp32")
    assert [p["role"] for p in per_batch["profiles"]] == ["contest", "batch", "batch", "batch"]
    labels = {r["label"] for r in result["rows"]}
    assert labels == {"naive fp32 contest", "naive fp32 serving", "per_batch fp32 serving",
                      "per_batch fp32 serving-nographs", "per_batch fp32 contest"}
    keys = {"model", "label", "harness", "layout", "precision", "cuda_graph", "bs", "sl", "latency_ms", "good",
            "a0", "r0", "a1", "r1", "build_s"}              # shared/conventions/results.md
    for r in result["rows"]:
        assert keys <= set(r) and r["good"] and r["harness"] in ("contest", "serving")
        if r["label"] == "per_batch fp32 serving":       # the batch-fixed profile of each shape
            assert r["profile"] == {1: 1, 4: 2}[r["bs"]]
        if r["harness"] == "contest":
            assert r["profile"] == 0 and not r["cuda_graph"]
    summary = {s["label"]: s for s in result["summary"]}
    assert summary["naive fp32 contest"]["vs_naive"] == 1.0 and summary["per_batch fp32 serving"]["cases"] == 2


def test_torch_baselines_on_cpu(tmp_path):
    pytest.importorskip("torch")
    from workload.data import generate
    from workload.model_config import ModelConfig

    generate(tmp_path / "data", grid=[(1, 16)], config=ModelConfig.tiny(), calibration=False, progress=False)
    out = tmp_path / "torch.json"
    rc = load("torch_baselines").main(["--data", str(tmp_path / "data"), "--out", str(out), "--config", "tiny",
                                       "--device", "cpu", "--variants", "eager-fp32", "--runs", "2", "--warmup", "0",
                                       "--grid", "1x16"])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["variant"], r["bs"], r["sl"], r["good"], r["harness"]) for r in rows] == [
        ("encoder", "eager-fp32", 1, 16, True, "torch"), ("decoder", "eager-fp32", 1, 16, True, "torch")]
    assert all(r["a0"] == 0.0 for r in rows)          # same weights, same device, same arithmetic


def test_plugins_suite_jobs(tmp_path):
    """The plugins suite: per-model variants, our rewrites in the configs, ratios against the plugin-free FP32 row."""
    from engine.config import BuildConfig

    layouts = load("layouts")
    args = layouts.parse_args(["--suite", "plugins", "--work", str(tmp_path), "--plugin-lib", "/x/lib.so"])
    jobs = layouts.make_jobs(args, ["encoder", "decoder"], tmp_path)
    by = {(j.model, j.variant.label): BuildConfig.load(j.config_path) for j in jobs}
    assert ("encoder", "passes fp32 +lsm") not in by and ("decoder", "fds_off fp32") not in by
    assert by[("decoder", "passes fp32 +ln+lsm")].plugins == ["wenet_layernorm_plugin", "wenet_log_softmax_plugin"]
    enc16 = by[("encoder", "fds_off fp16 norm32 +ln")]
    assert enc16.fp16 and enc16.layer_precision == {"norm": "fp32"} and enc16.precision_constraints == "obey"
    assert enc16.preview_features == {"FASTER_DYNAMIC_SHAPES_0805": False} and "bool_slice" in enc16.passes
    assert all(j.config_path.parent.name == "plugins" for j in jobs)
    rows = [{"model": "decoder", "label": lab, "latency_ms": ms, "good": True}
            for lab, ms in (("passes fp32 contest", 4.0), ("passes fp32 +lsm contest", 3.0))]
    summary = {s["label"]: s["vs_naive"] for s in layouts.summarize(rows, layouts.SUITES["plugins"][1])}
    assert summary == {"passes fp32 contest": 1.0, "passes fp32 +lsm contest": 0.75}


def test_frozen_config_variants(tmp_path):
    """--config LABEL=PATH: a study's frozen best is built as it is (its opt level, passes, plugins), for its
    model only, and measured under every harness; the layouts suite has the per_batch TF32 row."""
    from engine.config import BuildConfig

    layouts = load("layouts")
    frozen = Path(__file__).resolve().parents[2] / "bench" / "configs" / "decoder-serving-h100" / "decoder.yaml"
    args = layouts.parse_args(["--work", str(tmp_path), "--config", f"study-best={frozen}", "--opt-level", "3"])
    jobs = layouts.make_jobs(args, ["encoder", "decoder"], tmp_path)
    best = [j for j in jobs if j.variant.label == "study-best"]
    assert [j.model for j in best] == ["decoder"]
    assert best[0].variant.harnesses == ("contest", "serving", "serving-nographs")
    built = BuildConfig.load(best[0].config_path)
    assert built == BuildConfig.load(frozen) and built.opt_level == 1       # not --opt-level's 3
    tf32 = {j.model: BuildConfig.load(j.config_path) for j in jobs if j.variant.label == "per_batch tf32"}
    assert set(tf32) == {"encoder", "decoder"} and all(c.tf32 and c.layout == "per_batch" for c in tf32.values())


@pytest.mark.parametrize("spec", ["no-equals-sign", "=x.yaml", "label=/nonexistent/x.yaml", "label=BAD"])
def test_frozen_config_bad_input(tmp_path, capsys, spec):
    layouts = load("layouts")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: decoder\nfp16: maybe\n")           # a field of the wrong type
    spec = spec.replace("BAD", str(bad))
    with pytest.raises(SystemExit) as exc:
        layouts.parse_args(["--work", str(tmp_path), "--config", spec])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --config") and "\n" not in err


def _reproduce_inputs(tmp_path, rebuilt_ms):
    study = {"studies": [{"study": "wenet-decoder-contest", "harness": "contest", "trials": [
        {"number": 3, "user_attrs": {"cases": str([{"batch": 1, "length": 16, "latency_ms": 2.0, "good": True},
                                                   {"batch": 4, "length": 64, "latency_ms": 4.0, "good": True}])}}]}]}
    (tmp_path / "study.json").write_text(json.dumps(study))
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "decoder.yaml").write_text(
        "# Frozen by `python -m search freeze` on 2026-12-02 16:00 UTC.\n"
        "# study wenet-decoder-contest in sqlite:////w/study.db, trial 3: objective 6.000 ms, constraint -1, gpu 0.\n"
        "model: decoder\n")
    cases = [{"batch": b, "length": t, "latency_ms": ms, "good": True, "a0": 0, "r0": 0, "a1": 0, "r1": 0}
             for (b, t), ms in zip([(1, 16), (4, 64)], rebuilt_ms)]
    (tmp_path / "eval.json").write_text(json.dumps({"harness": "contest", "gpu": "G", "models": {"decoder": {"cases": cases}}}))
    return ["--study-json", str(tmp_path / "study.json"), "--configs", str(tmp_path / "configs"),
            "--evaluate-json", str(tmp_path / "eval.json"), "--out", str(tmp_path / "out.json")]


@pytest.mark.parametrize("rebuilt,rc", [((2.1, 3.7), 0), ((2.1, 4.5), 1)])
def test_reproduce_compares_the_frozen_trial(tmp_path, rebuilt, rc):
    reproduce = load("reproduce")
    assert reproduce.main(_reproduce_inputs(tmp_path, rebuilt)) == rc
    out = json.loads((tmp_path / "out.json").read_text())
    assert [c["within"] for c in out["compare"]] == [True, rc == 0]
    assert {r["label"] for r in out["rows"]} == {"trial 3", "build.sh"} and out["all_within"] == (rc == 0)


def test_reproduce_bad_input(tmp_path, capsys):
    reproduce = load("reproduce")
    args = _reproduce_inputs(tmp_path, (2.0, 4.0))
    (tmp_path / "configs" / "decoder.yaml").write_text("model: decoder\n")
    assert reproduce.main(args) == 2
    assert "no 'study ... trial N:' header" in capsys.readouterr().err


def test_reproduce_against_a_bench_label(tmp_path):
    reproduce = load("reproduce")
    args = _reproduce_inputs(tmp_path, (2.1, 3.7))
    rows = [{"model": "decoder", "label": "x contest", "harness": "contest", "bs": b, "sl": t, "latency_ms": ms,
             "good": True} for (b, t), ms in (((1, 16), 2.0), ((4, 64), 4.0))]
    (tmp_path / "bench.json").write_text(json.dumps({"rows": rows}))
    ev = args[args.index("--evaluate-json") + 1]
    out = ["--evaluate-json", ev, "--out", str(tmp_path / "o.json")]
    assert reproduce.main(["--bench-json", str(tmp_path / "bench.json"), "--label", "x contest", *out]) == 0
    assert {r["label"] for r in json.loads((tmp_path / "o.json").read_text())["rows"]} == {"x contest", "build.sh"}
    assert reproduce.main(["--bench-json", str(tmp_path / "bench.json"), "--label", "nope", *out]) == 2
    assert reproduce.main(["--bench-json", str(tmp_path / "bench.json"), *out]) == 2


def test_the_layouts_suite_has_fp32_and_fp16_of_every_layout():
    # issue 9's table: naive, single + passes, per_batch and buckets, each in FP32 and FP16
    suites = load("suites")
    labels = {v.label for v in suites.VARIANTS}
    for layout in ("naive", "single+passes", "per_batch", "buckets"):
        assert {f"{layout} fp32", f"{layout} fp16"} <= labels, layout
    harnesses = {v.label: v.harnesses for v in suites.VARIANTS}
    assert harnesses["single+passes fp16"] == ("contest",)
    assert harnesses["buckets fp16"] == ("serving", "serving-nographs")
    assert dict(next(v for v in suites.VARIANTS if v.label == "buckets fp16").fields)["fp16"] is True
