"""build -> run -> inspect -> CLI -> probe against the strict fake TensorRT (tests/engine/fake_trt.py).

These catch wrong API names, argument counts and types, and logic errors in the
glue before a GPU session does; numerics and speed are the GPU tests' business.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.config import BuildConfig
from engine.errors import BuildError, CalibrationError, InferenceError, InputError, PlanError
from engine.tiny_model import ort_outputs, tiny_feeds, write_calibration


def build(onnx, tmp_path, name="e", **kw):
    from engine.build import build_engine
    knobs = {k: kw.pop(k) for k in list(kw) if k in BuildConfig.__dataclass_fields__}
    return build_engine(onnx, BuildConfig("encoder", **knobs), tmp_path / f"{name}.plan", progress=False,
                        log_path=tmp_path / f"{name}.log", **kw)


def test_fp32_build_run_inspect(fake_trt, tiny_onnx, tmp_path):
    from engine.inspect import inspect_plan, load_layer_info, precision_counts
    from engine.runtime import TrtRunner
    trt, _ = fake_trt
    report = build(tiny_onnx, tmp_path)
    assert report.flags == [] and report.flags_cleared == ["TF32"] and report.opt_level == 3
    assert report.workspace_mib == 4096 and report.plan_bytes == (tmp_path / "e.plan").stat().st_size
    assert "build encoder from" in (tmp_path / "e.log").read_text()
    info = load_layer_info(report.layer_info_path)
    assert info == inspect_plan(tmp_path / "e.plan") and precision_counts(info) == {"fp32": 21, "int32": 1}
    feeds = tiny_feeds(4, 64)
    with TrtRunner(tmp_path / "e.plan") as runner:
        assert runner.input_names == ["speech", "speech_lengths"]
        assert runner.output_names == ["encoder_out", "encoder_out_lens"]
        out = runner.infer(feeds)
        ref = ort_outputs(tiny_onnx, feeds)
        np.testing.assert_array_equal(out["encoder_out"], ref["encoder_out"])
        np.testing.assert_array_equal(out["encoder_out_lens"], ref["encoder_out_lens"])
        assert runner.harness.name == "contest"          # the default: the organisers' loop, no graphs
        before = trt._stats["executions"]
        m = runner.measure(feeds, warmup=2, runs=3)
        assert m.latency_ms > 0 and m.profile == 0 and not m.cuda_graph and m.graph_note == "CUDA graphs off"
        assert m.shapes == {"speech": [4, 64, 80], "speech_lengths": [4]}
        assert trt._stats["executions"] - before == 2 + 3
        assert runner.time(feeds) > 0
        assert trt._stats["executions"] - before == 5 + 10 + 30
        assert trt._stats["captured"] == trt._stats["graph_launches"] == 0
        out2 = runner.infer(tiny_feeds(1, 16))               # smaller shape after a larger one: buffers reused
        assert out2["encoder_out"].shape == (1, 16, 80)


def test_runner_refuses_bad_feeds_and_frees_its_memory(fake_trt, tiny_onnx, tmp_path):
    import fake_trt as ft
    from engine.runtime import TrtRunner
    build(tiny_onnx, tmp_path)
    before = len(ft._MEMORY)
    runner = TrtRunner(tmp_path / "e.plan")
    with pytest.raises(InputError, match="expected exactly"):
        runner.infer({"speech": tiny_feeds(1, 16)["speech"]})
    with pytest.raises(InputError, match="outside optimization profile 0"):
        runner.infer(tiny_feeds(65, 16))
    runner.infer(tiny_feeds(2, 16))
    assert len(ft._MEMORY) > before
    runner.close()
    runner.close()
    assert len(ft._MEMORY) == before
    with pytest.raises(InferenceError, match="closed"):
        runner.infer(tiny_feeds(1, 16))
    bad = tmp_path / "bad.plan"
    bad.write_bytes(b"garbage")
    with pytest.raises(PlanError, match="cannot load .*Magic tag"):
        TrtRunner(bad)
    with pytest.raises(PlanError, match="does not exist"):
        TrtRunner(tmp_path / "none.plan")


def test_fp16_with_pinned_groups_lands(fake_trt, tiny_onnx, tmp_path):
    from engine.inspect import inspect_plan, precision_mismatches
    pins = {"feed_forward": "fp16", "norm": "fp32", "softmax": "fp32", "conv_module": "fp16"}
    report = build(tiny_onnx, tmp_path, fp16=True, layer_precision=pins)
    assert report.flags == ["FP16", "OBEY_PRECISION_CONSTRAINTS"]
    assert report.layer_precision_counts == {"fp16": 4, "fp32": 11} and report.layer_precision_requests == 15
    assert report.unmatched_groups == ["conv_module"] and "conv_module" in report.ignored["layer_precision"]
    mism = precision_mismatches("encoder", inspect_plan(tmp_path / "e.plan"), pins)
    assert set(mism) == {"conv_module"}


def test_int8_calibrates_once_then_reads_the_cache(fake_trt, tiny_onnx, tmp_path):
    calib = write_calibration(tmp_path / "calibration-encoder.npz", batches=3)
    first = build(tiny_onnx, tmp_path, "a", int8=True, calibration=calib)
    assert first.flags == ["INT8"] and first.calibration["batches"] == 3
    assert first.calibration["shapes"] == {"speech": [4, 64, 80], "speech_lengths": [4]}
    assert not first.calibration["cache_used"]
    cache = tmp_path / first.calibration["cache"].split("/")[-1]
    assert cache.read_bytes() == b"fake calibration table"
    second = build(tiny_onnx, tmp_path, "b", int8=True, calibration=calib)
    assert second.calibration["cache_used"] and second.calibration["cache"] == first.calibration["cache"]
    minmax = build(tiny_onnx, tmp_path, "c", int8=True, calibrator="minmax", calibration=calib)
    assert not minmax.calibration["cache_used"]           # another algorithm: its own cache


def test_int8_needs_calibration_data(fake_trt, tiny_onnx, tmp_path):
    with pytest.raises(BuildError, match="needs calibration data"):
        build(tiny_onnx, tmp_path, int8=True)
    with pytest.raises(CalibrationError, match="does not exist"):
        build(tiny_onnx, tmp_path, int8=True, calibration=tmp_path / "none.npz")
    np.savez(tmp_path / "c.npz", speech__0=np.zeros((1, 16, 80), np.float32))
    with pytest.raises(CalibrationError, match="speech_lengths"):
        build(tiny_onnx, tmp_path, int8=True, calibration=tmp_path / "c.npz")


def test_timing_cache_is_saved_reloaded_and_merged(fake_trt, tiny_onnx, tmp_path, monkeypatch):
    import engine.build as eb
    import engine.timing_cache as tc
    path = tmp_path / "t.cache"
    first = build(tiny_onnx, tmp_path, timing_cache=path)
    entries1 = json.loads(path.read_bytes())["fake_timing_cache"]
    assert first.timing_cache["loaded_bytes"] == 0 and len(entries1) == 1
    second = build(tiny_onnx, tmp_path, timing_cache=path)
    assert second.timing_cache["loaded_bytes"] == first.timing_cache["saved_bytes"]
    assert len(json.loads(path.read_bytes())["fake_timing_cache"]) == 2
    # another process rewrote the file during the build: its entries are merged in, not lost
    stats, real_stat = iter(["at load", "after build"]), tc.file_stat
    fake_stat = lambda p: next(stats, "after build")      # noqa: E731
    monkeypatch.setattr(eb, "file_stat", fake_stat)       # read at load (build) and before saving (timing_cache)
    monkeypatch.setattr(tc, "file_stat", fake_stat)
    path.write_bytes(json.dumps({"fake_timing_cache": ["from-elsewhere"]}).encode())
    third = build(tiny_onnx, tmp_path, timing_cache=path)
    assert third.timing_cache["merged"] is True
    assert "from-elsewhere" in json.loads(path.read_bytes())["fake_timing_cache"]
    # an unreadable cache starts empty instead of failing the build
    monkeypatch.setattr(eb, "file_stat", real_stat)
    monkeypatch.setattr(tc, "file_stat", real_stat)
    path.write_bytes(b"not a cache")
    fourth = build(tiny_onnx, tmp_path, timing_cache=path)
    assert "unreadable" in fourth.timing_cache["note"]


def test_loader_only_cudnn_drops_cudnn_and_the_timing_cache(fake_trt, tiny_onnx, tmp_path, monkeypatch):
    """The GPU host's rig: cuDNN's loader without its libraries (TensorRT 8.6 would abort)."""
    import engine.trt_compat as tc
    trt, _ = fake_trt
    monkeypatch.setattr(tc, "cudnn_loadable", lambda trt=None: False)
    seen = {}
    real = trt.Builder.build_serialized_network

    def spy(self, network, config):
        seen["tactics"] = config.get_tactic_sources()
        return real(self, network, config)
    monkeypatch.setattr(trt.Builder, "build_serialized_network", spy)
    path = tmp_path / "t.cache"
    report = build(tiny_onnx, tmp_path, timing_cache=path)
    assert not path.exists() and "cuDNN" in report.ignored["timing_cache"]
    assert "CUDNN" not in report.tactic_sources and "CUBLAS" in report.tactic_sources
    assert not seen["tactics"] >> int(trt.TacticSource.CUDNN) & 1
    explicit = build(tiny_onnx, tmp_path, tactic_sources=["CUDNN", "CUBLAS"])
    assert explicit.tactic_sources == ["CUBLAS"] and "CUDNN" in explicit.ignored["tactic_sources"]


def test_build_errors_are_one_line(fake_trt, tiny_onnx, tmp_path):
    trt, _ = fake_trt
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(BuildError, match="cannot parse") as err:
        build(bad, tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(BuildError, match="does not exist"):
        build(tmp_path / "none.onnx", tmp_path)

    def refuse(self, network, config):
        self._logger.log(trt.ILogger.ERROR, "4: [network.cpp::validate::2925] Error Code 4: out of\nmemory")
        return None
    original = trt.Builder.build_serialized_network
    trt.Builder.build_serialized_network = refuse
    try:
        with pytest.raises(BuildError, match="built no encoder engine: 4: .*out of memory") as err:
            build(tiny_onnx, tmp_path)
        assert "\n" not in str(err.value)
    finally:
        trt.Builder.build_serialized_network = original


def test_decoder_profile_does_not_fit_an_encoder_graph(fake_trt, tiny_onnx, tmp_path):
    from engine.build import build_engine
    with pytest.raises(BuildError, match="network input 'speech' has no profile shape"):
        build_engine(tiny_onnx, BuildConfig("decoder"), tmp_path / "d.plan", progress=False)


def test_knobs_reach_the_builder_config(fake_trt, tiny_onnx, tmp_path, monkeypatch):
    trt, _ = fake_trt
    seen = {}
    original = trt.Builder.build_serialized_network

    def spy(self, network, config):
        seen.update(tactics=config.get_tactic_sources(), level=config.builder_optimization_level,
                    aux=config.max_aux_streams, pool=config.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE),
                    verbosity=config.profiling_verbosity.name, tf32=config.get_flag(trt.BuilderFlag.TF32),
                    sparse=config.get_flag(trt.BuilderFlag.SPARSE_WEIGHTS),
                    opt=config._profiles[0].shapes["speech"][1])
        return original(self, network, config)
    monkeypatch.setattr(trt.Builder, "build_serialized_network", spy)
    build(tiny_onnx, tmp_path, tactic_sources=["CUBLAS_LT", "JIT_CONVOLUTIONS"], opt_level=1, max_aux_streams=2,
          workspace_mib=64, tf32=True, sparse_weights=True, opt_shape=(4, 64))
    assert seen == {"tactics": 0b10010, "level": 1, "aux": 2, "pool": 64 << 20, "verbosity": "DETAILED",
                    "tf32": True, "sparse": True, "opt": (4, 64, 80)}


def test_tensorrt_11_builds_fp32_and_refuses_fp16(monkeypatch, tiny_onnx, tmp_path):
    import fake_trt as ft
    ft.install(monkeypatch, "11.0.0")
    report = build(tiny_onnx, tmp_path, tactic_sources=["CUBLAS", "JIT_CONVOLUTIONS"])
    assert report.tactic_sources == ["JIT_CONVOLUTIONS"] and "CUBLAS" in report.ignored["tactic_sources"]
    with pytest.raises(BuildError, match="FP16"):
        build(tiny_onnx, tmp_path, fp16=True)


def test_tensorrt_10_progress_monitor(monkeypatch, tiny_onnx, tmp_path):
    import fake_trt as ft
    from engine.build import build_engine
    trt, _ = ft.install(monkeypatch, "10.0.1")
    seen = {}
    original = trt.Builder.build_serialized_network

    def spy(self, network, config):
        monitor = config.progress_monitor
        monitor.phase_start("Building", None, 2)
        seen["continue"] = monitor.step_complete("Building", 0)
        monitor.phase_finish("Building")
        return original(self, network, config)
    monkeypatch.setattr(trt.Builder, "build_serialized_network", spy)
    build_engine(tiny_onnx, BuildConfig("encoder"), tmp_path / "p.plan", progress=True)
    assert seen == {"continue": True}


def test_engine_cli(fake_trt, tiny_onnx, tmp_path, capsys):
    from engine.__main__ import main
    plan = tmp_path / "encoder.plan"
    rc = main(["build", "--baseline", "--model", "encoder", "--onnx", str(tiny_onnx), "--out", str(plan),
               "--work-dir", str(tmp_path / "work"), "--no-progress", "--timing-cache", str(tmp_path / "t.cache")])
    assert rc == 0 and plan.is_file() and (tmp_path / "encoder.build.log").is_file()
    assert (tmp_path / "encoder.layers.json").is_file() and (tmp_path / "t.cache").is_file()
    cfg = BuildConfig("encoder", passes=["layernorm"], fp16=True).save(tmp_path / "c.yaml")
    assert main(["build", "--config", str(cfg), "--onnx", str(tiny_onnx), "--out", str(tmp_path / "c.plan"),
                 "--work-dir", str(tmp_path / "work"), "--no-progress"]) == 0
    assert "rewrites: layernorm 1" in capsys.readouterr().err
    assert main(["inspect", str(plan), "--model", "encoder", "--json", str(tmp_path / "l.json")]) == 0
    assert "engine layers" in capsys.readouterr().out and (tmp_path / "l.json").is_file()


@pytest.mark.parametrize("argv,match", [
    (["build", "--baseline", "--onnx", "x.onnx", "--out", "x.plan"], "--baseline needs --model"),
    (["build", "--config", "none.yaml", "--onnx", "x.onnx", "--out", "x.plan"], "does not exist"),
    (["build", "--baseline", "--model", "encoder", "--onnx", "none.onnx", "--out", "x.plan"], "does not exist"),
    (["inspect", "none.plan"], "does not exist"),
    (["build", "--onnx", "x", "--out", "y"], "one of the arguments --config --baseline is required"),
])
def test_engine_cli_errors_are_one_line_exit_2(fake_trt, tmp_path, monkeypatch, capsys, argv, match):
    from engine.__main__ import main
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:          # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and match in err[0]


def test_int8_config_without_calibration_file_is_exit_2(fake_trt, tiny_onnx, tmp_path, capsys):
    from engine.__main__ import main
    cfg = BuildConfig("encoder", int8=True).save(tmp_path / "c.yaml")
    rc = main(["build", "--config", str(cfg), "--onnx", str(tiny_onnx), "--out", str(tmp_path / "c.plan"),
               "--work-dir", str(tmp_path / "work")])
    assert rc == 2 and "calibration file" in capsys.readouterr().err


def test_probe_passes_on_the_fake(fake_trt, tmp_path, capsys):
    from engine.probe import run_probe
    results = run_probe(tmp_path / "probe.json", keep=tmp_path / "keep")
    status = {r["feature"]: r["status"] for r in results}
    assert [f for f, s in status.items() if s == "FAIL"] == []
    assert status["build.progress"] == "SKIP" and len(status) > 30
    saved = json.loads((tmp_path / "probe.json").read_text())
    assert saved["counts"]["FAIL"] == 0 and saved["gpu"] == "Fake GPU H100"


def test_probe_keeps_going_past_failures(fake_trt, tmp_path, monkeypatch):
    trt, _ = fake_trt
    monkeypatch.delattr(trt.IBuilderConfig, "set_calibration_profile")
    monkeypatch.setattr(trt.Builder, "build_serialized_network", lambda self, n, c: None)
    from engine.probe import run_probe
    results = run_probe(tmp_path / "probe.json", only="env,build.fp32,build.fp16,runtime.io")
    assert [(r["feature"], r["status"]) for r in results] == [
        ("env", "PASS"), ("build.fp32", "FAIL"), ("runtime.io", "SKIP"), ("build.fp16", "FAIL")]
    assert "traceback" in results[1]
