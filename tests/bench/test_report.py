"""bench.report: README's generated blocks and figures match the committed results, and a hand edit is caught.

The committed files are checked in place; every tampering runs on a copy (README.md + bench/results)
under tmp_path. Tests that do not need PNGs re-rendered make the check compare hashes only.
"""
from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.report_tables import FIG_DIR
from bench.report_sources import fronts

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path) -> Path:
    """A copy of README.md, bench/results and the figures (docs/figures)."""
    shutil.copy2(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "bench" / "results", tmp_path / "bench" / "results")
    shutil.copytree(ROOT / "docs" / "figures", tmp_path / "docs" / "figures")
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


# --- the readers: each file's own shape -------------------------------------------------------------

def results_of(root: Path) -> Path:
    return root / "bench" / "results"


def test_readers_know_each_files_shape():
    from bench.report_sources import FILES, load_sources
    src = load_sources(ROOT / "bench" / "results", "h200")
    assert isinstance(src.data["pareto"], list) and src.data["pareto"][0]["front"]    # a list at the top
    assert isinstance(src.data["plugins"], dict) and src.data["plugins"]["rows"]
    assert set(src.data["plugins-gputests"]) == {"failed", "code", "assertions", "summary"}
    assert src.meta("pareto") == (None, None) and src.meta("plugins-gputests") == (None, None)
    assert src.meta("plugins")[1].startswith("python3.10 bench/layouts.py --suite plugins")
    assert "baseline" not in FILES and "smoke-study" not in FILES       # files no block shows are not read


@pytest.mark.parametrize("shape", ["one front object", "fronts key"])
def test_pareto_file_as_an_object_is_read_as_a_list(shape):
    from bench.report_sources import fronts
    one = {"study": "s", "model": "decoder", "front": [{"latency_ms": 1.0, "worst_ratio": 0.5}]}
    text = json.dumps(one if shape == "one front object" else {"fronts": [one]})
    assert fronts(text, "x") == [one]


def test_unused_files_are_ignored(root, capsys, hashes_only):
    (results_of(root) / "baseline-h200.json").write_text("[1, 2, 3]")      # the report does not read it
    (results_of(root) / "whatever-h200.json").write_text("{not json")
    rc, out, err = run(capsys, "--check", "--root", str(root))
    assert rc == 0, out + err


@pytest.mark.parametrize("damage", ["pareto not fronts", "pareto point without latency", "plugins rows not list",
                                    "study trial without number", "log without summary"])
def test_a_misshapen_file_is_one_line_and_exit_2(root, capsys, damage):
    res = results_of(root)
    if damage == "pareto not fronts":
        (res / "pareto-h200.json").write_text("[1, 2]")
    elif damage == "pareto point without latency":
        rec = json.loads((res / "pareto-h200.json").read_text())
        del rec[0]["front"][0]["latency_ms"]
        (res / "pareto-h200.json").write_text(json.dumps(rec))
    elif damage == "plugins rows not list":
        rec = json.loads((res / "plugins-h200.json").read_text())
        rec["rows"] = {"a": 1}
        (res / "plugins-h200.json").write_text(json.dumps(rec))
    elif damage == "study trial without number":
        rec = json.loads((res / "study-decoder-contest-h200.json").read_text())
        del rec["studies"][0]["trials"][3]["number"]
        (res / "study-decoder-contest-h200.json").write_text(json.dumps(rec))
    else:
        (res / "plugins-gputests-h200.log").write_text("FAILED tests/x.py::t\n")
    rc, out, err = run(capsys, "--check", "--root", str(root))
    assert rc == 2, out + err
    assert len(err.strip().splitlines()) == 1 and err.startswith("bench.report: ") and "-h200." in err


def test_pytest_log_reader():
    from bench.report_sources import pytest_log
    log = pytest_log((ROOT / "bench" / "results" / "plugins-gputests-h200.log").read_text(), "x")
    assert log["summary"].startswith("3 failed, 15 passed")
    assert "tests/plugins/test_gpu_plugins.py::test_registry_has_the_creators_the_rewrites_claim" in log["failed"]
    assert log["code"]["test_registry_has_the_creators_the_rewrites_claim"] == 'assert ("LayerNorm", "1") not in pairs'


def test_label_and_reason_helpers():
    from bench.report_data import plugin_free, plugin_set, short_reason
    assert plugin_set("passes fp16 norm32 +ln+lsm contest") == "+ln+lsm"
    assert plugin_free("passes fp16 norm32 +ln+lsm contest") == "passes fp16 norm32 contest"
    assert plugin_set("fds_off fp32 contest") == "" and plugin_free("fds_off fp32 contest") == "fds_off fp32 contest"
    fail = ("error: build: BuildError: TensorRT built no decoder engine: 10: Could not find any implementation for "
            "node {ForeignNode[/a...b]}. | 10: [optimizer.cpp::computeCosts::3873] Error Code 10: Internal Error")
    assert short_reason(fail) == "build: Could not find any implementation for node {ForeignNode[/a...b]}."
    assert short_reason("8.757 ms after 1 case(s) > the median 7.744 ms of 5 complete trial(s) at that step") == \
        "8.757 ms after 1 case > the median 7.744 ms of 5 complete trials"
    assert short_reason(None) == "" and len(short_reason("x" * 500)) == 120


# --- the new blocks and figures, against the files they come from ----------------------------------

def readme_block(name: str) -> str:
    return block((ROOT / "README.md").read_text(), name)


def test_plugins_block_and_figure_come_from_the_plugins_file():
    rec = json.loads((ROOT / "bench" / "results" / "plugins-h200.json").read_text())
    text = readme_block("plugins")
    for s in rec["summary"]:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{s['label']}` |"))
        assert f"| {s['good']}/{s['cases']} | {s['sum_ms']:.2f} |" in row
    assert "wenet_layernorm_plugin 19, wenet_log_softmax_plugin 1" in text      # plugin sites of the builds
    dec = next(line for line in text.splitlines() if line.startswith("| `passes fp16 norm32 +ln+lsm contest` |"))
    assert "| 0.57x | 0.56x |" in dec                                           # vs plugin-free, vs the baseline
    spec = json.loads((ROOT / FIG_DIR / "plugins.json").read_text())
    bars = {b["label"]: b for p in spec["panels"] for g in p["groups"] for b in g["bars"]}
    assert bars["fds_off fp16 norm32 +ln contest"]["good"] == 6 and bars["fds_off fp16 norm32 contest"]["good"] == 0
    assert [g["base"] for g in spec["panels"][1]["groups"]] == ["passes fp32 contest", "passes fp16 norm32 contest"]
    layers = json.loads((ROOT / FIG_DIR / "plugin-layers.json").read_text())
    assert [p["key"] for p in layers["profiles"]] == ["encoder fds_off fp32 1x16", "encoder fds_off fp32 +ln 1x16"]
    assert "`encoder fds_off fp32 +ln 1x16` (contest, profile 0)" in readme_block("plugin-layers")


def test_precision_block_marks_what_is_missing_and_where_the_plugin_row_comes_from():
    text = readme_block("precision")
    enc, dec = text.split("\n\nencoder:\n\n")[1].split("\n\ndecoder:\n\n")
    summary = json.loads((ROOT / "bench" / "results" / "precision-h200.json").read_text())["summary"]
    for model, part in (("encoder", enc), ("decoder", dec)):         # one mark per precision the file lacks
        have = {s["precision"] for s in summary if s["model"] == model}
        assert part.count("**not measured**") == len({"fp32", "fp16", "mixed", "int8"} - have)
    for part, label in ((enc, "fds_off fp16 norm32 +ln contest"), (dec, "passes fp16 norm32 +ln+lsm contest")):
        row = next(line for line in part.splitlines() if f"`{label}`" in line)
        assert row.startswith("| fp16 + our plugins | **plugins bench**") and "not the study" in row
    # the study's rows: trial, label, sum and speed-up as the precision file says (not copied numbers)
    for s in (x for x in summary if x["model"] == "decoder"):
        assert (f"| {s['precision']} | study trial {s['trial']} | `{s['label']}` | {s['latency_sum_ms']:.2f} | "
                f"{s['speedup_vs_fp32']:.2f}x |") in dec


def test_reproduce_block_and_a_shape_out_of_tolerance(root, capsys, hashes_only):
    text = readme_block("reproduce")
    assert "12/12 shapes within 10%" in text and "every shape within the tolerance" in text
    assert "| 16x1024 | 8.243 | 8.290 | 1.006 | yes | Good |" in text
    path = results_of(root) / "reproduce-h200.json"
    rec = json.loads(path.read_text())
    rec["compare"][0].update(rebuilt_ms=rec["compare"][0]["trial_ms"] * 1.5, ratio=1.5, within=False)
    rec["all_within"] = False
    path.write_text(json.dumps(rec))
    assert run(capsys, "--root", str(root))[0] == 0
    new = block((root / "README.md").read_text(), "reproduce")
    assert "**not** every shape" in new and "| 1x16 | 1.535 | 2.302 | 1.500 | **no** |" in new
    assert "11/12 shapes within 10%" in new


def test_decoder_study_block_has_every_trial_and_short_reasons():
    rec = json.loads((ROOT / "bench" / "results" / "study-decoder-contest-h200.json").read_text())
    text = readme_block("decoder-study")
    rows = [line for line in text.splitlines() if re.match(r"^\| \d+ \|", line)]
    assert len(rows) == sum(len(st["trials"]) for st in rec["studies"])      # a table per study, a row per trial
    for st in rec["studies"]:
        counts = collections.Counter(t["state"] for t in st["trials"])
        summary = ", ".join(f"{k} {counts[k]}" for k in ("COMPLETE", "FAIL", "PRUNED", "RUNNING", "WAITING")
                            if counts[k])
        assert f"`{st['study']}` ({st['model']}, {st['harness']} harness): {len(st['trials'])} trials, {summary};" \
            in text, summary
    assert "BuildError" not in text and "(s)" not in text
    no_impl = sum("Could not find any implementation" in (t.get("fail_reason") or "") for st in rec["studies"]
                  for t in st["trials"])
    assert no_impl >= 3 and text.count("`build: Could not find any implementation for node") == no_impl
    spec = json.loads((ROOT / FIG_DIR / "decoder-study.json").read_text())
    assert [t["state"] for t in spec["studies"][0]["trials"]][10:13] == ["FAIL", "FAIL", "FAIL"]


def test_older_study_is_labelled_and_pareto_uses_the_fronts():
    assert "an **older** study export" in readme_block("study") and "of 2026-11-25" in readme_block("study")
    assert "Older study export (2026-11-25)" in readme_block("fig-study")
    spec = json.loads((ROOT / FIG_DIR / "pareto.json").read_text())
    dec = next(p for p in spec["panels"] if p["model"] == "decoder")
    front = json.loads((ROOT / "bench" / "results" / "pareto-h200.json").read_text())
    study_front = next(f for f in front if f["model"] == "decoder")["front"]
    drawn = dec["fronts"][0]["points"]
    assert sorted(q["trial"] for q in drawn) == sorted(q["trial"] for q in study_front)
    ratios = [q["worst_ratio"] for q in drawn]
    assert ratios == sorted(ratios)                                                   # drawn by worst ratio
    assert {q["source"] for q in dec["points"]} == {"layouts", "plugins"}
    assert "bench/results/pareto-h200.json" in spec["sources"]


def test_the_h100_pareto_draws_the_h100_files_only():
    """The second front figure reads the H100 layouts run and the serving study's fronts, never the H200 files."""
    spec = json.loads((ROOT / FIG_DIR / "pareto-h100.json").read_text())
    assert spec["sources"] == ["bench/results/layouts-h100.json", "bench/results/pareto-h100.json"]
    dec = next(p for p in spec["panels"] if p["model"] == "decoder")
    assert {q["source"] for q in dec["points"]} == {"layouts@h100"}
    path = ROOT / "bench" / "results" / "pareto-h100.json"
    front = fronts(path.read_text(), str(path))                 # the reader: a list of fronts, whatever the shape
    study_front = next(f for f in front if f["model"] == "decoder")["front"]
    assert json.loads(path.read_text())["rows"]                 # the bench/results format: per-shape rows
    assert sorted(q["trial"] for q in dec["fronts"][0]["points"]) == sorted(q["trial"] for q in study_front)
    enc = next(p for p in spec["panels"] if p["model"] == "encoder")
    assert enc["fronts"] == [] and enc["points"]                 # no encoder study on the H100 yet


def test_bug_entries_come_from_the_study_and_the_test_log():
    text = readme_block("bugs-found")
    assert re.search(r"in trials 10, 11, 12(, \d+)* of `bench/results/study-decoder-contest-h200.json`", text)
    assert "{ForeignNode[/decoder/Unsqueeze_8_output_0.../scoring/Cast_5]}" in text
    assert "`passes fp16 norm32 +ln+lsm contest` (12/12 Good)" in text
    assert "LayerNorm v1 plugin is still registered by the 8.6.0 pip wheel" in text


def test_without_the_new_files_their_blocks_say_so(root, capsys):
    pytest.importorskip("matplotlib")
    for key in ("plugins", "precision", "pareto", "reproduce", "reproduce-eval", "study-decoder-contest",
                "reproduce-plugins", "reproduce-plugins-eval", "reproduce-decoder-contest",
                "reproduce-eval-decoder-contest"):
        (results_of(root) / f"{key}-h200.json").unlink()
    (results_of(root) / "plugins-gputests-h200.log").unlink()
    rc, out, _ = run(capsys, "--root", str(root))
    assert rc == 0, out
    text = (root / "README.md").read_text()
    assert "not made: bench/results/plugins-h200.json is missing" in block(text, "fig-plugins")
    assert "Not made: bench/results/reproduce-h200.json is missing" in block(text, "reproduce")
    assert "No new failure" in block(text, "bugs-found")
    assert "Not made: bench/results/reproduce-plugins-h200.json is missing" in block(text, "reproduce-plugins")
    assert ("Not made: bench/results/reproduce-decoder-contest-h200.json is missing"
            in block(text, "reproduce-decoder-contest"))
    assert "<!-- n:dstudy.best -->[not made: bench/results/study-decoder-contest-h200.json is missing]" in text
    assert "<!-- n:plugins.parallel -->[not made: bench/results/plugins-h200.json is missing]<!-- /n -->" in text
    assert not (root / FIG_DIR / "plugins.png").exists() and (root / FIG_DIR / "pareto.png").exists()
    assert run(capsys, "--check", "--root", str(root))[0] == 0


def test_reproduce_plugins_block_compares_the_bench_with_the_rebuild():
    text = readme_block("reproduce-plugins")
    assert "9/12 shapes within 10% of the bench's latency" in text and "**not** every shape" in text
    assert "`passes fp16 norm32 +ln+lsm contest` of `bench/results/plugins-h200.json`" in text
    assert "| 1x16 | 1.575 | 1.101 | 0.699 | **no** | Good |" in text and "| sum | 26.140 | 26.467 | 1.013 |" in text
    assert "loaded the plugin library `libwenet_trt_plugins.so`" in text
    from bench.report_sources import FILES
    assert {"reproduce-plugins", "reproduce-plugins-eval"} <= set(FILES)


def test_reproduce_block_of_the_study_best_and_its_numbers_come_from_the_files():
    results = Path(__file__).resolve().parents[2] / "bench" / "results"
    rep = json.loads((results / "reproduce-decoder-contest-h200.json").read_text())
    study = json.loads((results / "study-decoder-contest-h200.json").read_text())["studies"][0]
    best = min((t for t in study["trials"] if t["state"] == "COMPLETE" and t["feasible"]), key=lambda t: t["value"])
    text = readme_block("reproduce-decoder-contest")
    trial = rep["compare"][0]["trial"]
    assert trial == best["number"]                  # the frozen trial is the study's best feasible one
    assert f"trial {trial} of `wenet-decoder-contest`" in text
    within = sum(c["within"] for c in rep["compare"])
    assert f"{within}/{len(rep['compare'])} shapes within 10% of the trial's latency" in text
    c = rep["compare"][0]
    assert f"| {c['bs']}x{c['sl']} | {c['trial_ms']:.3f} | {c['rebuilt_ms']:.3f} | {c['ratio']:.3f} |" in text
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"<!-- n:dstudy.best -->trial {best['number']}<!-- /n -->" in readme
    worst = max(abs(c["ratio"] - 1) for c in rep["compare"])
    assert f"<!-- n:repro-dec.max-dev -->{worst * 100:.1f}%<!-- /n -->" in readme


# --- inline numbers in the prose, and no bare measured number outside them ---------------------------

def prose_edit(root: Path, old: str, new: str) -> None:
    readme = root / "README.md"
    text = readme.read_text()
    assert text.count(old) >= 1, old
    readme.write_text(text.replace(old, new, 1))


def test_bare_measured_number_in_prose_fails(root, capsys, hashes_only):
    prose_edit(root, "## 总述 / Overview\n", "## 总述 / Overview\n\nThe encoder now runs in 12.3 ms.\n")
    rc, out, _ = run(capsys, "--check", "--root", str(root))
    assert rc == 1 and "measured-looking number '12.3 ms' outside an inline number" in out, out
    assert run(capsys, "--root", str(root))[0] == 0          # generating only warns ...
    assert "12.3 ms" in (root / "README.md").read_text()        # ... and leaves the prose alone
    assert run(capsys, "--check", "--root", str(root))[0] == 1


def test_inline_number_with_a_wrong_value_fails_and_is_rewritten(root, capsys, hashes_only):
    good = "<!-- n:repro-plugins.bench-sum -->26.14 ms<!-- /n -->"
    prose_edit(root, good, "<!-- n:repro-plugins.bench-sum -->25.00 ms<!-- /n -->")
    rc, out, _ = run(capsys, "--check", "--root", str(root))
    assert rc == 1 and "inline number n:repro-plugins.bench-sum is '25.00 ms', the results give '26.14 ms'" in out
    pytest.importorskip("matplotlib")
    assert run(capsys, "--root", str(root))[0] == 0
    assert (root / "README.md").read_bytes() == (ROOT / "README.md").read_bytes()


def test_inline_number_follows_its_result_file(root, capsys, hashes_only):
    path = results_of(root) / "reproduce-plugins-h200.json"
    rec = json.loads(path.read_text())
    rec["compare"][0]["trial_ms"] += 1.0
    path.write_text(json.dumps(rec))
    rc, out, _ = run(capsys, "--check", "--root", str(root))
    assert rc == 1 and "n:repro-plugins.bench-sum is '26.14 ms', the results give '27.14 ms'" in out


@pytest.mark.parametrize("marker, message", [
    ("<!-- n:no.such.key -->1.5 ms<!-- /n -->", "unknown inline number n:no.such.key"),
    ("<!-- n:layouts.parallel -->4", "malformed inline number"),
    ("<!-- n:Layouts.Parallel -->4<!-- /n -->", "malformed inline number")])
def test_unknown_or_malformed_inline_number_fails(root, capsys, hashes_only, marker, message):
    prose_edit(root, "## 总述 / Overview\n", f"## 总述 / Overview\n\nBuilds at a time: {marker}.\n")
    rc, out, _ = run(capsys, "--check", "--root", str(root))
    assert rc == 1 and message in out, out
    rc, _, err = run(capsys, "--root", str(root))            # generating refuses it: exit 2, one line
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_what_the_prose_rule_lets_through():
    from bench.report_inline import bare_numbers
    text = "\n".join([
        "Good iff a0 < 3.5e-2 and r0 < 2e-4 (the contest's thresholds); shapes 16x256 and 1x16, opt level 3.",
        "TensorRT 8.6.0 on CUDA 13, Python 3.10; `--trial-timeout 600 s` and `0.30x` in code spans.",
        "Issue 9's serving target (0.05x the naive sum); <!-- n:layouts.parallel -->4 s<!-- /n --> in a marker.",
        "", "    python3 -m search tune --time-budget 28800   # 8 h", "",
        "```yaml", "eps: 1.0e-5   # 12 ms", "```",
        "<!-- report:x -->", "| 12.3 ms |", "<!-- /report:x -->"])
    assert bare_numbers(text) == []
    for bare in ("runs 12.3 ms", "0.30x the naive", "by 12%", "a 133 MiB plan", "took 22 s", "off by 1.9e-6",
                 "~14 ms", "0.85-0.95x"):
        found = bare_numbers(f"Prose that {bare}.")
        assert len(found) == 1 and found[0].startswith("README.md:1: "), (bare, found)


def test_every_registered_number_is_in_readme_and_computes():
    from bench.report_inline import used_keys
    from bench.report_numbers import NUMBERS, value
    from bench.report_sources import FILES, load_sources
    src = load_sources(ROOT / "bench" / "results", "h200")
    assert used_keys((ROOT / "README.md").read_text()) == set(NUMBERS)
    for key, n in NUMBERS.items():
        assert set(n.files) <= set(FILES), key
        v = value(src, key)
        assert v and "not made" not in v and "<" not in v and "\n" not in v, (key, v)


def test_numbers_listing(capsys):
    rc, out, _ = run(capsys, "--numbers")
    assert rc == 0
    assert "repro-plugins.rebuilt-sum = '26.47 ms'  [bench/results/reproduce-plugins-h200.json]" in out
    assert "not in README" not in out


# --- TPE vs random at equal trials (issue 10): a random-sampler study beside the TPE one --------------

def test_a_random_study_in_the_export_adds_the_sampler_race(root, capsys):
    pytest.importorskip("matplotlib")
    path = results_of(root) / "study-decoder-contest-h200.json"
    export = json.loads(path.read_text())
    tpe = export["studies"][0]
    rand = json.loads(json.dumps(tpe))
    rand["study"] = "wenet-decoder-contest-random"
    rand["user_attrs"]["sampler"] = "random"
    rand["trials"] = rand["trials"][:30]
    for t in rand["trials"]:
        if t.get("value") is not None:
            t["value"] *= 1.5                  # random's every trial 1.5x slower than TPE's same-numbered one
    export["studies"] = [tpe, rand]          # in place of the export's own random study
    path.write_text(json.dumps(export))
    assert tpe["user_attrs"]["sampler"] == "tpe"

    rc, out, _ = run(capsys, "--root", str(root))
    assert rc == 0, out
    text = block((root / "README.md").read_text(), "decoder-study")
    feasible = [t["value"] for t in tpe["trials"][:30] if t["state"] == "COMPLETE" and t.get("feasible")]
    best = min(feasible)
    assert (f"- decoder, best feasible after 30 trials each (seeds and plans included): random {best * 1.5:.2f} ms, "
            f"tpe {best:.2f} ms\n") in text
    # the samplers' own choices: trials without a seed or plan label, the first k of each study
    own = [t for t in tpe["trials"] if not (t.get("user_attrs") or {}).get("seed")
           and not (t.get("user_attrs") or {}).get("plan") and not (t.get("user_attrs") or {}).get("interrupted")]
    k = len([t for t in own if t["number"] < 30])
    own_best = min(t["value"] for t in own[:k] if t["state"] == "COMPLETE" and t.get("feasible"))
    assert (f"- decoder, best feasible among the first {k} trials each sampler chose itself (no seed, no plan): "
            f"random {own_best * 1.5:.2f} ms, tpe {own_best:.2f} ms; random / TPE = 1.50x") in text
    spec = json.loads((root / FIG_DIR / "decoder-study.json").read_text())
    assert sorted(c["sampler"] for c in spec["samplers"]) == ["random", "tpe"]
    assert [len(c["best_so_far"]) for c in spec["samplers"]] == [len(tpe["trials"]), 30]
    assert [len(c["chosen_best"]) for c in spec["samplers"]] == [len(own), k]    # the own-choice panel's curves


def test_a_random_study_of_seeds_only_is_no_comparison_yet():
    from bench.report_data import at_equal_choices, sampler_curves

    def trial(n, value, **ua):
        return {"number": n, "state": "COMPLETE" if value else "FAIL", "value": value, "feasible": bool(value),
                "user_attrs": ua}
    seeds = [trial(0, 5.0, seed="baseline"), trial(1, 4.0, seed="passes_fp32")]
    tpe = {"study": "t", "model": "decoder", "user_attrs": {"sampler": "tpe"}, "trials": seeds + [trial(2, 3.0)]}
    rnd = {"study": "r", "model": "decoder", "user_attrs": {"sampler": "random"},
           "trials": seeds + [trial(2, None, interrupted="stale")]}       # the host was lost mid-trial
    curves = sampler_curves([tpe, rnd])
    assert at_equal_choices(curves, "decoder") == (0, {"tpe": None, "random": None})
    rnd["trials"].append(trial(3, 3.5))
    assert at_equal_choices(sampler_curves([tpe, rnd]), "decoder") == (1, {"tpe": 3.0, "random": 3.5})


def test_one_sampler_only_draws_no_race():
    from bench.report_data import sampler_curves
    st = {"study": "s", "model": "decoder", "user_attrs": {"sampler": "tpe"},
          "trials": [{"number": 0, "state": "COMPLETE", "value": 2.0, "feasible": True}]}
    assert sampler_curves([st, {**st, "study": "s2"}]) == []
    race = sampler_curves([st, {**st, "study": "r", "user_attrs": {"sampler": "random"}}])
    assert [(c["study"], c["sampler"], c["best_so_far"]) for c in race] == [("s", "tpe", [2.0]), ("r", "random", [2.0])]

