"""build.sh argument handling and the commands it runs, with stub Pythons (no TensorRT, no torch needed)."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def stub(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def run(tmp_path: Path, *args: str, python: Path, torch_python: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": str(python), "WORK": str(tmp_path / "work"),
           "CONFIG_DIR": str(tmp_path / "configs"), "OUT_DIR": str(tmp_path / "out")}
    if torch_python is not None:
        env["TORCH_PYTHON"] = str(torch_python)
    return subprocess.run(["bash", str(ROOT / "build.sh"), *args], capture_output=True, text=True, env=env,
                          timeout=60)


@pytest.fixture
def recorder(tmp_path):
    """A 'python' that logs every call and succeeds (so `-c "import tensorrt"` passes)."""
    log = tmp_path / "calls.log"
    return stub(tmp_path / "python-rec", f'echo "$*" >> "{log}"\nexit 0\n'), log


def test_python_without_tensorrt_is_a_clear_error(tmp_path):
    py = stub(tmp_path / "python-no-trt", 'case "$*" in *tensorrt*) exit 1 ;; esac\nexit 0\n')
    res = run(tmp_path, python=py)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error: ") and "cannot import tensorrt" in res.stderr
    assert "PYTHON=python3.10" in res.stderr


def test_missing_python_and_bad_arguments(tmp_path, recorder):
    res = run(tmp_path, python=tmp_path / "nope")
    assert res.returncode == 2 and "not found" in res.stderr
    res = run(tmp_path, "--fast", python=recorder[0])
    assert res.returncode == 2 and "unknown argument --fast" in res.stderr
    res = run(tmp_path, "--models", "joiner", python=recorder[0])
    assert res.returncode == 2 and "unknown model joiner" in res.stderr


def test_help_mentions_the_environment(tmp_path, recorder):
    res = run(tmp_path, "--help", python=recorder[0])
    assert res.returncode == 0 and "TORCH_PYTHON" in res.stdout and "set -euo" not in res.stdout


def test_frozen_config_for_one_model_baseline_for_the_other(tmp_path, recorder):
    py, log = recorder
    (tmp_path / "work" / "onnx").mkdir(parents=True)
    (tmp_path / "work" / "data").mkdir()
    for m in ("encoder", "decoder"):
        (tmp_path / "work" / "onnx" / f"{m}.onnx").write_bytes(b"x")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "encoder.yaml").write_text("model: encoder\n")
    (tmp_path / "configs" / "encoder.timing.cache").write_bytes(b"cache")
    (tmp_path / "work" / "data" / "calibration-encoder.npz").write_bytes(b"npz")
    res = run(tmp_path, python=py)
    assert res.returncode == 0, res.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "-c import tensorrt"
    # every build's inputs are checked before anything is built (or written)
    checks = [i for i, c in enumerate(calls) if c.startswith("-m engine check")]
    builds = [i for i, c in enumerate(calls) if c.startswith("-m engine build")]
    assert len(checks) == len(builds) == 2 and max(checks) < min(builds)
    assert f"--config {tmp_path}/configs/encoder.yaml" in calls[checks[0]]
    enc = next(c for c in calls if c.startswith("-m engine build") and "encoder.onnx" in c)
    dec = next(c for c in calls if c.startswith("-m engine build") and "decoder.onnx" in c)
    w = tmp_path / "work"
    assert enc.startswith("-m engine build") and f"--config {tmp_path}/configs/encoder.yaml" in enc
    assert f"--timing-cache {w}/build-encoder.timing.cache" in enc          # a copy, the frozen one stays
    assert (w / "build-encoder.timing.cache").read_bytes() == b"cache"
    assert f"--calibration {w}/data/calibration-encoder.npz" in enc and f"--out {tmp_path}/out/encoder.plan" in enc
    assert "--baseline --model decoder" in dec and "--config" not in dec
    assert not any("workload export" in c for c in calls)                 # ONNX present: no export


def test_baseline_flag_and_export_when_onnx_missing(tmp_path, recorder):
    py, log = recorder
    torch_log = tmp_path / "torch.log"
    torch_py = stub(tmp_path / "python-torch", f'echo "$*" >> "{torch_log}"\nexit 0\n')
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "decoder.yaml").write_text("model: decoder\n")
    res = run(tmp_path, "--baseline", "--models", "decoder", python=py, torch_python=torch_py)
    assert res.returncode == 0, res.stderr
    assert torch_log.read_text().strip() == f"-m workload export --out {tmp_path}/work/onnx"
    calls = [c for c in log.read_text().splitlines() if c.startswith("-m engine build")]
    assert len(calls) == 1 and "--baseline --model decoder" in calls[0]
    check = next(c for c in log.read_text().splitlines() if c.startswith("-m engine check"))
    assert "--onnx" not in check          # not exported yet when checked: the config and outputs only


def test_failing_build_stops_with_its_status(tmp_path):
    py = stub(tmp_path / "python-fail", 'case "$*" in *"engine build"*) echo "error: boom" >&2; exit 2 ;; esac\nexit 0\n')
    (tmp_path / "work" / "onnx").mkdir(parents=True)
    (tmp_path / "work" / "onnx" / "encoder.onnx").write_bytes(b"x")
    res = run(tmp_path, "--models", "encoder", python=py)
    assert res.returncode == 2 and "error: boom" in res.stderr and "== done" not in res.stdout
