"""evaluate.py: table and JSON formatting, one-line errors with exit 2, and a full run on the fake TensorRT."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import evaluate as ev
import engine.evaluation as evl
from scoring.metrics import CaseErrors
from scoring.objective import CaseResult

ENGINE_TESTS = Path(__file__).resolve().parents[1] / "engine"
if str(ENGINE_TESTS) not in sys.path:
    sys.path.insert(0, str(ENGINE_TESTS))


def cases():
    return [CaseResult(1, 16, 0.5, CaseErrors(1e-3, 1e-4, 0.0, 0.0, "encoder")),
            CaseResult(64, 1024, 20.0, CaseErrors(5e-2, 1e-4, 0.0, 0.0, "encoder"))]     # a0 over 3.5e-2: Bad


def test_rows_and_table():
    rows = ev.rows_json(cases())
    assert rows[0] == {"batch": 1, "length": 16, "latency_ms": 0.5, "throughput": 32000.0, "a0": 1e-3, "r0": 1e-4,
                       "a1": 0.0, "r1": 0.0, "good": True, "worst_ratio": pytest.approx(1e-4 / 2e-3),
                       "penalty": 1.0}
    assert rows[1]["good"] is False and rows[1]["penalty"] == pytest.approx(2 * 5e-2 / 3.5e-2)
    table = ev.format_table(rows).splitlines()
    assert table[0].split() == ["bs", "sl", "latency(ms)", "throughput", "a0", "r0", "a1", "r1", "check"]
    assert table[2].split()[:4] == ["1", "16", "0.500", "32000.0"] and table[2].endswith("Good")
    assert table[3].endswith("Bad")
    summary = ev.model_summary(cases())
    assert summary["good_cases"] == 1 and summary["total_cases"] == 2 and summary["constraint"] > 0
    assert summary["objective"] == pytest.approx(0.5 + 20.0 * 2 * 5e-2 / 3.5e-2)
    assert json.loads(json.dumps(rows)) == rows


def test_select_cases(tmp_path):
    (tmp_path / "encoder-1-16.npz").write_bytes(b"")
    found, missing = ev.select_cases("encoder", tmp_path, strict=False)
    assert [(b, t) for b, t, _ in found] == [(1, 16)] and len(missing) == 11      # the judged grid: 12 shapes
    with pytest.raises(ev.EvaluateError, match=r"11 test file\(s\) missing"):
        ev.select_cases("encoder", tmp_path)
    with pytest.raises(ev.EvaluateError, match="no decoder test file"):
        ev.select_cases("decoder", tmp_path, strict=False)
    with pytest.raises(ev.EvaluateError, match="data folder"):
        ev.select_cases("encoder", tmp_path / "none")


def test_load_case_names_missing_keys(tmp_path):
    np.savez(tmp_path / "encoder-1-16.npz", speech=np.zeros((1, 16, 80), np.float32), encoder_out=np.zeros(1))
    with pytest.raises(ev.EvaluateError, match=r"lacks key\(s\) \['speech_lengths', 'encoder_out_lens'\]"):
        evl.load_case(tmp_path / "encoder-1-16.npz", "encoder", ["speech", "speech_lengths"])


def run_cli(argv, capsys):
    try:
        code = ev.main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()


@pytest.mark.parametrize("argv,match", [
    (["--models", "encoder", "--encoder", "none.plan"], "engine file none.plan does not exist"),
    (["--models", "joiner"], "--models 'joiner'"),
    (["--grid", "4y64"], "bad grid entry"),
    (["--runs"], "expected one argument"),
])
def test_cli_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys, argv, match):
    monkeypatch.chdir(tmp_path)
    code, out = run_cli(argv, capsys)
    err = out.err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and match in err[0]


def test_cli_missing_data_is_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "encoder.plan").write_bytes(b"x")
    code, out = run_cli(["--models", "encoder", "--data", "nowhere"], capsys)
    assert code == 2 and out.err.strip() == ("error: data folder nowhere does not exist "
                                             "(write it with `python -m workload data`)")


@pytest.fixture
def fake_setup(monkeypatch, tmp_path):
    """A fake-TensorRT encoder plan of the probe's tiny graph and two test cases with onnxruntime references."""
    import fake_backend
    import onnx

    from engine.build import build_engine
    from engine.config import BuildConfig
    from engine.tiny_model import tiny_encoder_model, write_cases

    fake_backend.install(monkeypatch)
    onnx_path = tmp_path / "tiny.onnx"
    onnx.save(tiny_encoder_model(), str(onnx_path))
    build_engine(onnx_path, BuildConfig("encoder"), tmp_path / "encoder.plan", progress=False)
    write_cases(tmp_path / "data", onnx_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_full_run_writes_json(fake_setup, capsys):
    code, out = run_cli(["--models", "encoder", "--data", "data", "--json", "out.json", "--no-progress",
                         "--runs", "3"], capsys)
    assert code == 0, out.err
    assert "encoder (encoder.plan, serving harness)" in out.out and sum(l.endswith("Good") for l in out.out.splitlines()) == 2
    assert "no test file for 1x64" in out.err                  # cases of the grid without data are named
    result = json.loads((fake_setup / "out.json").read_text())
    assert result["gpu"] == "Fake GPU H100" and result["tensorrt"] == "8.6.0" and result["harness"] == "serving"
    enc = result["models"]["encoder"]
    assert [(c["batch"], c["length"], c["good"]) for c in enc["cases"]] == [(1, 16, True), (4, 64, True)]
    assert all(c["harness"] == "serving" and c["profile"] == 0 for c in enc["cases"])   # how each case ran
    assert enc["good_cases"] == 2 and enc["constraint"] < 0 and result["objective"] == pytest.approx(enc["objective"])
    # the same cases as rows of the results convention; no build report beside the plan: layout unknown
    rows = result["rows"]
    assert [(r["model"], r["label"], r["bs"], r["sl"], r["latency_ms"]) for r in rows] == [
        ("encoder", "encoder encoder.plan", c["batch"], c["length"], c["latency_ms"]) for c in enc["cases"]]
    assert all(r["harness"] == "serving" and r["layout"] is None and r["build_s"] is None for r in rows)


def test_rows_take_layout_and_precision_from_the_build_report(fake_setup, capsys):
    from engine.config import BuildConfig
    cfg = BuildConfig("encoder", fp16=True, layer_precision={"norm": "fp32"}, layout="per_batch",
                      batch_buckets=[1, 4, 16])
    (fake_setup / "encoder.report.json").write_text(json.dumps({"build_s": 12.5, "config": cfg.to_dict()}))
    code, out = run_cli(["--models", "encoder", "--data", "data", "--json", "out.json", "--no-progress",
                         "--runs", "2"], capsys)
    assert code == 0, out.err
    rows = json.loads((fake_setup / "out.json").read_text())["rows"]
    assert rows and all((r["layout"], r["precision"], r["build_s"]) == ("per_batch", "mixed", 12.5) for r in rows)


def test_contest_mode_uses_the_harness_loop(fake_setup, capsys):
    from engine.backend import get_backend
    stats = get_backend().stats                                  # the test double's counters
    before = stats["executions"]
    code, out = run_cli(["--models", "encoder", "--data", "data", "--contest", "--grid", "1x16", "--no-progress"],
                        capsys)
    assert code == 0, out.err
    assert stats["executions"] - before == 1 + 10 + 30      # one accuracy run, the final harness's 10 + 30
    assert stats["graph_launches"] == 0                     # the organisers' loop replays no graph


def test_explicit_grid_needs_every_file(fake_setup, capsys):
    code, out = run_cli(["--models", "encoder", "--data", "data", "--grid", "1x16,16x256"], capsys)
    assert code == 2 and "encoder-16-256.npz" in out.err


def test_reference_that_does_not_fit_is_one_error(fake_setup):
    with np.load("data/encoder-1-16.npz") as z:
        arrays = dict(z)
    arrays["encoder_out"] = arrays["encoder_out"][:, :8]
    np.savez("data/encoder-1-16.npz", **arrays)
    with pytest.raises(ev.EvaluateError, match="encoder-1-16.npz: output shape"):
        ev.evaluate_plan("encoder", "encoder.plan", "data", grid=[(1, 16)])


def test_evaluate_plan_reports_each_case_and_checks_outputs(fake_setup):
    seen = []
    res = ev.evaluate_plan("encoder", "encoder.plan", "data", grid=[(1, 16), (4, 64)], runs=2, warmup=0,
                           on_case=seen.append)
    assert seen == res and all(c.errors.good for c in res)
    np.savez("data/decoder-1-16.npz", x=np.zeros(1))
    with pytest.raises(ev.EvaluateError, match=r"encoder.plan has no output\(s\) \['best_index', 'decoder_out'\]"):
        ev.evaluate_plan("decoder", "encoder.plan", "data", grid=[(1, 16)])


def test_plugin_arguments(tmp_path):
    (tmp_path / "a.so").write_bytes(b"\x7fELF")
    sub = tmp_path / "libs"
    sub.mkdir()
    (sub / "b.so").write_bytes(b"\x7fELF")
    libs = ev.plugin_libraries([str(sub), str(tmp_path / "a.so")], tmp_path)
    assert [p.name for p in libs] == ["a.so", "b.so"]
    with pytest.raises(ev.EvaluateError, match="does not exist"):
        ev.plugin_libraries([str(tmp_path / "none.so")], None)
