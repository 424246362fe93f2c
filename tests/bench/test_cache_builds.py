"""bench/cache_builds.py on the CPU: every config built cold (empty cache) then warm (its cache), rows as data."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import cache_builds  # noqa: E402

FAKE = Path(__file__).with_name("fake_engine_build.py")


def run(tmp_path, *extra, fail=None):
    cmd = [sys.executable, str(FAKE)] + (["--fail-label", fail] if fail else [])
    return cache_builds.main(["--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"), "--gpu", "NVIDIA H200",
                              "--models", "decoder", "--only", "naive fp32,per_batch fp32",
                              "--build-command", shlex.join(cmd), *extra])


def test_each_config_is_built_cold_then_warm_from_its_own_cache(tmp_path):
    assert run(tmp_path) == 0
    rec = json.loads((tmp_path / "out" / "cache-builds-h200.json").read_text())
    assert rec["kind"] == "cache-builds" and rec["gpu"] == "NVIDIA H200"
    rows = {r["label"]: r for r in rec["rows"]}
    assert sorted(rows) == ["naive fp32", "per_batch fp32"]
    for r in rows.values():
        assert r["cold"]["loaded_bytes"] == 0 and r["warm"]["loaded_bytes"] == 100   # warm read the cold build's
        assert (r["cold_build_s"], r["warm_build_s"], r["warm_over_cold"]) == (8.0, 2.0, 0.25)
        assert r["model"] == "decoder" and r["precision"] == "fp32"
    assert rows["per_batch fp32"]["layout"] == "per_batch" and rows["naive fp32"]["layout"] == "single"


def test_a_rerun_starts_cold_again(tmp_path):
    assert run(tmp_path) == 0
    assert run(tmp_path) == 0                 # the cache of the first run is removed before the cold build
    rec = json.loads((tmp_path / "out" / "cache-builds-h200.json").read_text())
    assert all(r["cold"]["loaded_bytes"] == 0 for r in rec["rows"])


def test_a_failed_build_is_a_row_with_its_reason(tmp_path):
    assert run(tmp_path, fail="per_batch") == 0
    rows = {r["label"]: r for r in json.loads((tmp_path / "out" / "cache-builds-h200.json").read_text())["rows"]}
    bad = rows["per_batch fp32"]
    assert bad["cold"]["status"] == "failed" and "no engine" in bad["cold"]["reason"]
    assert bad["warm"]["status"] == "skipped" and "warm_over_cold" not in bad
    assert rows["naive fp32"]["warm"]["status"] == "built"


def test_the_deadline_skips_the_rest(tmp_path):
    assert run(tmp_path, "--deadline-s", "0") == 0
    rows = json.loads((tmp_path / "out" / "cache-builds-h200.json").read_text())["rows"]
    assert {r["cold"]["status"] for r in rows} == {"skipped"} and len(rows) == 2


@pytest.mark.parametrize("extra, match", [(["--models", "nosuch"], "--models 'nosuch'"),
                                          (["--only", "naive fp33"], "--only naive fp33: not a variant")])
def test_a_selection_of_nothing_is_one_line_and_exit_2(extra, match, tmp_path, capsys):
    assert cache_builds.main(["--work", str(tmp_path), "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and match in err[0]
    assert not list(tmp_path.glob("*.json"))
