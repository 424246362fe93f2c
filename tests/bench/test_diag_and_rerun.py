"""The CPU side of two GPU-host scripts: the rerun comparison, and the diag graphs checked in onnxruntime."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "bench" / "diag"))

import rerun_compare  # noqa: E402


def layouts_file(path: Path, scale: float, good: bool = True) -> Path:
    rows = [{"model": "decoder", "label": lab, "harness": h, "bs": bs, "sl": sl, "latency_ms": base * scale,
             "good": good}
            for lab, h, base in (("naive fp32", "contest", 4.0), ("per_batch fp32", "serving", 3.0))
            for bs, sl in ((1, 16), (16, 1024))]
    rows.append({"model": "encoder", "label": "unchanged", "harness": "contest", "bs": 1, "sl": 16,
                 "latency_ms": 1.0, "good": True})
    path.write_text(json.dumps({"date": "d", "command": "c", "rows": rows}))
    return path


def test_rerun_compare_ratios_and_tolerance(tmp_path, capsys):
    then = layouts_file(tmp_path / "then.json", 1.0)
    now = layouts_file(tmp_path / "now.json", 1.05)
    out = tmp_path / "out.json"
    assert rerun_compare.main(["--rerun", str(now), "--baseline", str(then), "--out", str(out), "--note", "seam"]) == 0
    rec = json.loads(out.read_text())
    assert [(c["label"], c["harness"], c["ratio"], c["within"]) for c in rec["comparison"] if c["model"] == "decoder"] \
        == [("naive fp32", "contest", 1.05, True), ("per_batch fp32", "serving", 1.05, True)]
    assert rec["all_within"] is True and rec["note"] == "seam" and rec["rows"]
    slow = layouts_file(tmp_path / "slow.json", 1.2, good=False)
    assert rerun_compare.main(["--rerun", str(slow), "--baseline", str(then), "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["all_within"] is False and {c["good_now"] for c in rec["comparison"] if c["model"] == "decoder"} == {0}
    assert "OUTSIDE tolerance" in capsys.readouterr().out


def test_rerun_compare_bad_input_is_one_line(tmp_path, capsys):
    then = layouts_file(tmp_path / "then.json", 1.0)
    assert rerun_compare.main(["--rerun", str(tmp_path / "nope.json"), "--baseline", str(then),
                               "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot read")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": [{"model": "x", "label": "y", "harness": "z", "bs": 1, "sl": 1,
                                           "latency_ms": 1.0}]}))
    assert rerun_compare.main(["--rerun", str(other), "--baseline", str(then), "--out", str(tmp_path / "o.json")]) == 2
    assert "share no" in capsys.readouterr().err


def test_the_mask_slice_repro_graph_computes_what_it_says():
    """The FASTER_DYNAMIC_SHAPES-off repro slices a length mask [:, :, 2::2] twice, as Conv2dSubsampling4."""
    ort = pytest.importorskip("onnxruntime")
    import trt86_graphs
    model = trt86_graphs.tiny_mask_slice_model()
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    speech = np.random.default_rng(0).standard_normal((2, 32, 80)).astype(np.float32)
    lengths = np.array([32, 11], np.int32)
    out, mask = sess.run(None, {"speech": speech, "speech_lengths": lengths})
    full = np.arange(32)[None, :] < lengths[:, None]
    want = full[:, 2::2][:, 2::2]
    assert mask.shape == (2, 1, want.shape[1]) and (mask[:, 0].astype(bool) == want).all()
    w = trt86_graphs.numpy_helper_weight(model)
    np.testing.assert_allclose(out, (speech[:, 2::2][:, 2::2] @ w) * want[:, :, None], rtol=1e-5, atol=1e-5)


def test_diag_cli_refuses_unknown_cases():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "diag" / "trt86_graphs.py"), "nope"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: unknown case(s) nope")
