"""`python -m workload`: the happy paths on the tiny model, and bad input -> one line, exit 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workload.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def _fails(capsys, argv: list[str], needle: str) -> None:
    with pytest.raises(SystemExit) as info:
        code = main(argv)
        raise SystemExit(code)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and needle in err, err


@pytest.mark.parametrize("argv, needle", [
    (["export", "--checkpoint", "/nonexistent/model.pt"], "does not exist"),
    (["data", "--checkpoint", "/nonexistent/model.pt", "--grid", "1x16"], "does not exist"),
    (["data", "--grid", "4y64"], "4y64"),
    (["data", "--grid", "1x3"], "1x3"),
    (["export", "--models", "encoder,joiner"], "joiner"),
    (["export", "--style", "newest"], "newest"),
    (["export", "--seed", "-1"], "-1"),
    (["data", "--device", "tpu"], "tpu"),
    (["checkpoint"], "--out"),
    ([], "command"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, needle):
    if "--out" not in argv and argv and argv[0] in ("export", "data"):
        argv = argv + ["--out", str(tmp_path / "out")]
    _fails(capsys, argv, needle)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_checkpoint_of_the_wrong_size_is_one_line(capsys, tmp_path):
    assert main(["checkpoint", "--config", "tiny", "--out", str(tmp_path / "tiny.pt")]) == 0
    _fails(capsys, ["export", "--checkpoint", str(tmp_path / "tiny.pt"), "--out", str(tmp_path / "o")],
           "does not fit config 'aishell'")


def test_export_data_checkpoint_on_the_tiny_model(tmp_path, capsys):
    ckpt = tmp_path / "tiny.pt"
    assert main(["checkpoint", "--config", "tiny", "--seed", "4", "--out", str(ckpt)]) == 0
    assert main(["export", "--config", "tiny", "--checkpoint", str(ckpt), "--models", "encoder",
                 "--style", "modern", "--out", str(tmp_path / "onnx")]) == 0
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["encoder.onnx"]
    assert main(["data", "--config", "tiny", "--checkpoint", str(ckpt), "--grid", "2x16",
                 "--no-calibration", "--out", str(tmp_path / "data")]) == 0
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["decoder-2-16.npz", "encoder-2-16.npz"]
    with np.load(tmp_path / "data" / "encoder-2-16.npz") as f:
        assert f["speech"].shape == (2, 16, 80)


def test_module_entry_point(tmp_path):
    """The real `python -m workload` process: --help works, bad input exits 2 with one stderr line."""
    run = dict(cwd=ROOT, capture_output=True, text=True, timeout=120)
    ok = subprocess.run([sys.executable, "-m", "workload", "data", "--help"], **run)
    assert ok.returncode == 0 and "--grid" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "workload", "export", "--config", "tiny", "--out",
                          str(tmp_path), "--checkpoint", str(tmp_path / "missing.pt")], **run)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error: ")
