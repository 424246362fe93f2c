"""bench/host.sh precision-plans on the CPU: the plans are queued in the serving study in PRECISION_PLANS order,
on the seed BASE names, after the harness's own seeds (the study is new), with INT8 plans only when asked."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from search.storage import open_study


def queue(work: Path, **extra) -> list[str]:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "WORK": str(work), "OUT": str(work / "out"), "TRT_PYTHON": sys.executable,
           "PYTHONPATH": str(repo), "MODELS": "decoder", "GPU_SLUG": "test", **extra}
    done = subprocess.run(["bash", "bench/host.sh", "precision-plans"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    study = open_study(f"sqlite:///{work / 'study.db'}", "decoder", "serving", create=False)
    return [t.user_attrs.get("seed") or t.user_attrs.get("plan") for t in study.trials]


def test_precision_plans_queue_the_seeds_then_the_plans_in_order(work):
    labels = queue(work, BASE="per_batch_tf32", PRECISION_PLANS="sensitivity bisect")
    assert labels[:3] == ["per_batch", "per_batch_fp16", "per_batch_tf32"]
    plans = labels[3:]
    assert plans[0] == "sensitivity/fp16/all@per_batch_tf32" and plans[-1].startswith("bisect/")
    first_bisect = next(i for i, p in enumerate(plans) if p.startswith("bisect/"))
    assert all(p.startswith("sensitivity/") for p in plans[:first_bisect])
    assert all(p.endswith("@per_batch_tf32") for p in plans)


def test_int8_rules_only_with_allow_int8(work):
    plain = queue(work, BASE="per_batch", PRECISION_PLANS="rules")
    assert plain[3:] and not any("int8" in p for p in plain[3:])
    again = queue(work, BASE="per_batch", PRECISION_PLANS="rules", ALLOW_INT8="1")
    assert again[:len(plain)] == plain                                  # the study is not seeded twice
    assert any(p.startswith("rules/int8:") for p in again[len(plain):])


def test_precision_plans_resume_the_exported_study_before_queueing(work, tmp_path):
    """A fresh host (no carried study.db) imports the committed export first, so the new plans queue behind
    the study's history instead of in a new study."""
    import shutil

    from search.cli import main

    first = queue(work, BASE="per_batch", PRECISION_PLANS="sensitivity")
    export = tmp_path / "study.json"
    assert main(["export", "--work-dir", str(work), "--harness", "serving", "--model", "decoder",
                 "--out", str(export)]) == 0
    fresh = tmp_path / "fresh"
    shutil.copytree(work, fresh, ignore=shutil.ignore_patterns("study.db*", "out"))
    again = queue(fresh, BASE="per_batch", PRECISION_PLANS="bisect", IMPORT_JSON=str(export))
    assert again[:len(first)] == first
    assert again[len(first):] and all(p.startswith("bisect/") for p in again[len(first):])
