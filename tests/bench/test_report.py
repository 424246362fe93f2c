"""bench.report: README's generated blocks and figures match the committed results, and a hand edit is caught.

The committed files are checked in place; every tampering runs on a copy (README.md + bench/results)
under tmp_path. Tests that do not need PNGs re-rendered make the check compare hashes only.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.report_tables import FIG_DIR

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path) -> Path:
    """A copy of README.md and bench/results."""
    shutil.copy2(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "bench" / "results", tmp_path / "bench" / "results")
    return tmp_path


@pytest.fixture
def hashes_only(monkeypatch):
    """As on a machine with other matplotlib versions: PNGs checked by hash, not re-rendered (fast)."""
    monkeypatch.setattr(report, "_renderer", lambda: None)


def run(capsys, *args) -> tuple[int, str, str]:
    rc = report.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def block(text: str, name: str) -> str:
    return text.split(f"<!-- report:{name} -->\n", 1)[1].split(f"\n<!-- /report:{name} -->", 1)[0]


def test_committed_report_is_current():
    """What CI runs: README's generated sections and figures are what the committed results give."""
    p = subprocess.run([sys.executable, "-m", "bench.report", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "match the results" in p.stdout


def test_readme_shows_at_least_four_generated_figures():
    text = (ROOT / "README.md").read_text()
    shown = re.findall(rf"!\[[^\]]*\]\(({re.escape(FIG_DIR)}/[a-z]+\.png)\)", text)
    assert len(set(shown)) >= 4
    for path in shown:
        assert (ROOT / path).is_file() and (ROOT / path).with_suffix(".json").is_file()


def test_hand_edited_readme_number_fails(root, capsys, hashes_only):
    readme = root / "README.md"
    text = readme.read_text()
    old = block(text, "summary-encoder")
    m = re.search(r"\| (\d+)\.(\d) \|", old)              # a sum-ms cell
    new = old[:m.start()] + f"| {int(m.group(1)) + 1}.{m.group(2)} |" + old[m.end():]
    readme.write_text(text.replace(old, new))
    rc, out, err = run(capsys, "--check", "--root", str(root))
    assert rc == 1
    assert "report:summary-encoder differs" in out and out.count("\n") >= 1
    assert "python3 -m bench.report" in err


def test_hand_edited_result_file_fails(root, capsys, hashes_only):
    path = root / "bench" / "results" / "layouts-h200.json"
    rec = json.loads(path.read_text())
    row = next(r for r in rec["rows"] if r["model"] == "encoder" and r["label"] == "naive fp32 contest")
    row["latency_ms"] *= 2
    path.write_text(json.dumps(rec))
    rc, out, _ = run(capsys, "--check", "--root", str(root))
    assert rc == 1
    assert "report:summary-encoder differs" in out
    assert f"{FIG_DIR}/latency.json: plotted data differs" in out


def test_edited_png_fails(root, capsys, hashes_only):
    png = root / FIG_DIR / "latency.png"
    data = bytearray(png.read_bytes())
    data[-20] ^= 0xFF
    png.write_bytes(bytes(data))
    rc, out, _ = run(capsys, "--check", "--root", str(root))
    assert rc == 1 and "latency.png does not match the hash" in out


def test_foreign_image_stale_figure_and_broken_markers(root, capsys, hashes_only):
    (root / FIG_DIR / "old.png").write_bytes(b"x")
    readme = root / "README.md"
    text = readme.read_text().replace("<!-- /report:diag -->", "![old](bench/results/layouts-h200-encoder.png)")
    readme.write_text(text)
    rc, out, _ = run(capsys, "--check", "--root", str(root))
    assert rc == 1
    assert f"{FIG_DIR}/old.png: not made by the report" in out
    assert "shows bench/results/layouts-h200-encoder.png" in out
    assert "report:diag is not closed" in out or "never closed" in out
    rc, _, err = run(capsys, "--root", str(root))           # generating refuses broken markers
    assert rc == 2 and len(err.strip().splitlines()) == 1


def test_regenerating_reproduces_the_committed_files(root, capsys):
    """The command is deterministic: on a tampered copy it writes back the committed bytes."""
    pytest.importorskip("matplotlib")
    readme = root / "README.md"
    text = readme.read_text()
    old = block(text, "summary-decoder")
    readme.write_text(text.replace(old, old.replace("12/12", "11/12", 1)))
    (root / FIG_DIR / "latency.json").unlink()
    rc, out, _ = run(capsys, "--root", str(root))
    assert rc == 0, out
    assert readme.read_bytes() == (ROOT / "README.md").read_bytes()
    figs = sorted(p.name for p in (ROOT / FIG_DIR).iterdir())
    assert sorted(p.name for p in (root / FIG_DIR).iterdir()) == figs
    manifest = json.loads((ROOT / FIG_DIR / "manifest.json").read_text())
    same_renderer = manifest["renderer"] == report._renderer()
    for name in figs:
        if name.endswith(".json") or same_renderer:    # PNG bytes only match with the same versions
            assert (root / FIG_DIR / name).read_bytes() == (ROOT / FIG_DIR / name).read_bytes(), name
    assert run(capsys, "--check", "--root", str(root))[0] == 0


def test_missing_source_file_skips_its_figure(root, capsys):
    pytest.importorskip("matplotlib")
    (root / "bench" / "results" / "study-h200.json").unlink()
    rc, out, _ = run(capsys, "--root", str(root))
    assert rc == 0 and "skipped figure study: bench/results/study-h200.json is missing" in out
    text = (root / "README.md").read_text()
    assert "not made: bench/results/study-h200.json is missing" in block(text, "fig-study")
    assert not (root / FIG_DIR / "study.png").exists()
    assert run(capsys, "--check", "--root", str(root))[0] == 0


@pytest.mark.parametrize("damage", ["no results folder", "bad json", "no readme", "row without latency"])
def test_bad_input_is_one_line_and_exit_2(root, capsys, damage):
    results = root / "bench" / "results"
    if damage == "no results folder":
        shutil.rmtree(results)
    elif damage == "bad json":
        (results / "layouts-h200.json").write_text("{not json")
    elif damage == "no readme":
        (root / "README.md").unlink()
    else:
        rec = json.loads((results / "layouts-h200.json").read_text())
        del rec["rows"][0]["bs"]
        (results / "layouts-h200.json").write_text(json.dumps(rec))
    for args in (["--check"], []):
        rc, out, err = run(capsys, *args, "--root", str(root))
        assert rc == 2, out + err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert err.startswith("bench.report: ")


def test_unknown_gpu_is_bad_input(capsys):
    rc, _, err = run(capsys, "--check", "--gpu", "a30")
    assert rc == 2 and "no result files for gpu 'a30'" in err


def test_rewrite_replaces_only_block_contents():
    text = "a\n<!-- report:x -->\nold\n<!-- /report:x -->\nb"
    new, problems, seen = report.rewrite(text, {"x": "new"})
    assert new == "a\n<!-- report:x -->\nnew\n<!-- /report:x -->\nb" and not problems
    assert seen == {"x": ("old", "new")}
    _, problems, _ = report.rewrite("<!-- report:y -->\n<!-- /report:y -->", {"x": "new"})
    assert problems and "unknown block report:y" in problems[0]
