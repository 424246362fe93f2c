"""build -> run -> inspect -> CLI -> probe over the backend test double (tests/engine/fake_backend.py).

These catch logic errors above the seam (settings, reports, files, runner, CLI) before a GPU
session does; the TensorRT adapter, numerics and speed are the GPU tests' business
(tests/engine/test_gpu_backend.py).
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


def test_fp32_build_run_inspect(fake, tiny_onnx, tmp_path):
    from engine.inspect import inspect_plan, load_layer_info, precision_counts
    from engine.runtime import TrtRunner
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
        before = fake.stats["executions"]
        m = runner.measure(feeds, warmup=2, runs=3)
        assert m.latency_ms > 0 and m.profile == 0 and not m.cuda_graph and m.graph_note == "CUDA graphs off"
        assert m.shapes == {"speech": [4, 64, 80], "speech_lengths": [4]}
        assert fake.stats["executions"] - before == 2 + 3
        assert runner.time(feeds) > 0
        assert fake.stats["executions"] - before == 5 + 10 + 30
        assert fake.stats["captured"] == fake.stats["graph_launches"] == 0
        out2 = runner.infer(tiny_feeds(1, 16))               # smaller shape after a larger one: buffers reused
        assert out2["encoder_out"].shape == (1, 16, 80)


def test_runner_refuses_bad_feeds_and_frees_its_memory(fake, tiny_onnx, tmp_path):
    from engine.runtime import TrtRunner
    build(tiny_onnx, tmp_path)
    memory = fake.device().memory
    before = len(memory)
    runner = TrtRunner(tmp_path / "e.plan")
    with pytest.raises(InputError, match="expected exactly"):
        runner.infer({"speech": tiny_feeds(1, 16)["speech"]})
    with pytest.raises(InputError, match="outside optimization profile 0"):
        runner.infer(tiny_feeds(65, 16))
    runner.infer(tiny_feeds(2, 16))
    assert len(memory) > before
    runner.close()
    runner.close()
    assert len(memory) == before
    with pytest.raises(InferenceError, match="closed"):
        runner.infer(tiny_feeds(1, 16))
    bad = tmp_path / "bad.plan"
    bad.write_bytes(b"garbage")
    with pytest.raises(PlanError, match="cannot load .*Magic tag"):
        TrtRunner(bad)
    with pytest.raises(PlanError, match="does not exist"):
        TrtRunner(tmp_path / "none.plan")


def test_fp16_with_pinned_groups_lands(fake, tiny_onnx, tmp_path):
    from engine.inspect import inspect_plan, precision_mismatches
    pins = {"feed_forward": "fp16", "norm": "fp32", "softmax": "fp32", "conv_module": "fp16"}
    report = build(tiny_onnx, tmp_path, fp16=True, layer_precision=pins)
    assert report.flags == ["FP16", "OBEY_PRECISION_CONSTRAINTS"]
    assert report.layer_precision_counts == {"fp16": 4, "fp32": 11} and report.layer_precision_requests == 15
    assert report.unmatched_groups == ["conv_module"] and "conv_module" in report.ignored["layer_precision"]
    mism = precision_mismatches("encoder", inspect_plan(tmp_path / "e.plan"), pins)
    assert set(mism) == {"conv_module"}


def test_int8_calibrates_once_then_reads_the_cache(fake, tiny_onnx, tmp_path):
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


def test_int8_needs_calibration_data(fake, tiny_onnx, tmp_path):
    with pytest.raises(BuildError, match="needs calibration data"):
        build(tiny_onnx, tmp_path, int8=True)
    with pytest.raises(CalibrationError, match="does not exist"):
        build(tiny_onnx, tmp_path, int8=True, calibration=tmp_path / "none.npz")
    np.savez(tmp_path / "c.npz", speech__0=np.zeros((1, 16, 80), np.float32))
    with pytest.raises(CalibrationError, match="speech_lengths"):
        build(tiny_onnx, tmp_path, int8=True, calibration=tmp_path / "c.npz")


def test_timing_cache_is_saved_reloaded_and_merged(fake, tiny_onnx, tmp_path, monkeypatch):
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


def test_loader_only_cudnn_drops_cudnn_and_the_timing_cache(monkeypatch, tiny_onnx, tmp_path):
    """The GPU host's rig: cuDNN's loader without its libraries (TensorRT 8.6 would abort)."""
    import dataclasses

    import fake_backend
    fake = fake_backend.install(monkeypatch, caps=dataclasses.replace(fake_backend.capabilities_of("8.6.0"),
                                                                      cudnn=False))
    path = tmp_path / "t.cache"
    report = build(tiny_onnx, tmp_path, timing_cache=path)
    assert not path.exists() and "cuDNN" in report.ignored["timing_cache"]
    assert fake.jobs[-1].settings.drop_tactic_sources == ["CUDNN"] and fake.jobs[-1].timing_cache is None
    explicit = build(tiny_onnx, tmp_path, tactic_sources=["CUDNN", "CUBLAS"])
    assert explicit.tactic_sources == ["CUBLAS"] and "CUDNN" in explicit.ignored["tactic_sources"]


def test_build_errors_are_one_line(fake, tiny_onnx, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(BuildError, match="cannot parse") as err:
        build(bad, tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(BuildError, match="does not exist"):
        build(tmp_path / "none.onnx", tmp_path)

    fake.fail_build = "4: [network.cpp::validate::2925] Error Code 4: out of\nmemory"
    with pytest.raises(BuildError, match="built no encoder engine: 4: .*out of memory") as err:
        build(tiny_onnx, tmp_path)
    assert "\n" not in str(err.value)


def test_decoder_profile_does_not_fit_an_encoder_graph(fake, tiny_onnx, tmp_path):
    from engine.build import build_engine
    with pytest.raises(BuildError, match="network input 'speech' has no profile shape"):
        build_engine(tiny_onnx, BuildConfig("decoder"), tmp_path / "d.plan", progress=False)


def test_knobs_reach_the_builder_settings(fake, tiny_onnx, tmp_path):
    report = build(tiny_onnx, tmp_path, tactic_sources=["CUBLAS_LT", "JIT_CONVOLUTIONS"], opt_level=1,
                   max_aux_streams=2, workspace_mib=64, tf32=True, sparse_weights=True, opt_shape=(4, 64))
    job = fake.jobs[-1]
    s = job.settings
    assert (s.tactic_sources, s.opt_level, s.max_aux_streams, s.workspace_bytes, s.detailed_profiling) == (
        ["CUBLAS_LT", "JIT_CONVOLUTIONS"], 1, 2, 64 << 20, True)
    assert s.flags_on == ["TF32", "SPARSE_WEIGHTS"] and job.profiles[0]["speech"][1] == (4, 64, 80)
    assert (report.tactic_sources, report.opt_level, report.max_aux_streams, report.workspace_mib) == (
        ["CUBLAS_LT", "JIT_CONVOLUTIONS"], 1, 2, 64)


def test_tensorrt_11_builds_fp32_and_refuses_fp16(monkeypatch, tiny_onnx, tmp_path):
    import fake_backend
    fake_backend.install(monkeypatch, "11.0.0")
    report = build(tiny_onnx, tmp_path, tactic_sources=["CUBLAS", "JIT_CONVOLUTIONS"])
    assert report.tactic_sources == ["JIT_CONVOLUTIONS"] and "CUBLAS" in report.ignored["tactic_sources"]
    with pytest.raises(BuildError, match="FP16"):
        build(tiny_onnx, tmp_path, fp16=True)


def test_tensorrt_10_gets_a_progress_tracker(monkeypatch, tiny_onnx, tmp_path):
    import fake_backend
    from engine.build import build_engine
    fake = fake_backend.install(monkeypatch, "10.0.1")
    build_engine(tiny_onnx, BuildConfig("encoder"), tmp_path / "p.plan", progress=True)
    assert fake.jobs[-1].tracker is not None
    fake_backend.install(monkeypatch, "8.6.0").jobs.clear()
    build_engine(tiny_onnx, BuildConfig("encoder"), tmp_path / "q.plan", progress=True)
    import engine.backend as eb
    assert eb.get_backend().jobs[-1].tracker is None          # 8.6: the elapsed-time line only


def test_engine_cli(fake, tiny_onnx, tmp_path, capsys):
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
def test_engine_cli_errors_are_one_line_exit_2(fake, tmp_path, monkeypatch, capsys, argv, match):
    from engine.__main__ import main
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:          # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and match in err[0]


def test_int8_config_without_calibration_file_is_exit_2(fake, tiny_onnx, tmp_path, capsys):
    from engine.__main__ import main
    cfg = BuildConfig("encoder", int8=True).save(tmp_path / "c.yaml")
    rc = main(["build", "--config", str(cfg), "--onnx", str(tiny_onnx), "--out", str(tmp_path / "c.plan"),
               "--work-dir", str(tmp_path / "work")])
    assert rc == 2 and "calibration file" in capsys.readouterr().err


def test_probe_passes_on_the_fake(fake, tmp_path, capsys):
    from engine.probe import run_probe
    results = run_probe(tmp_path / "probe.json", keep=tmp_path / "keep")
    status = {r["feature"]: r["status"] for r in results}
    assert [f for f, s in status.items() if s == "FAIL"] == []
    assert status["build.progress"] == "SKIP" and len(status) > 30
    saved = json.loads((tmp_path / "probe.json").read_text())
    assert saved["counts"]["FAIL"] == 0 and saved["gpu"] == "Fake GPU H100"


def test_probe_keeps_going_past_failures(fake, tmp_path, monkeypatch):
    def no_engine(job, report):
        raise BuildError("TensorRT built no encoder engine")
    monkeypatch.setattr(fake, "build", no_engine)
    from engine.probe import run_probe
    results = run_probe(tmp_path / "probe.json", only="env,build.fp32,build.fp16,runtime.io")
    assert [(r["feature"], r["status"]) for r in results] == [
        ("env", "PASS"), ("build.fp32", "FAIL"), ("runtime.io", "SKIP"), ("build.fp16", "FAIL")]
    assert "traceback" in results[1]
