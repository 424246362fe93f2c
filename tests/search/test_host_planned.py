"""bench/host.sh planned: the install call runs the pipeline written for the host's card (bench/plans/<card>.sh),
so no choice waits for the card's name with the host idle; a card without a plan is an error, not a guess."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def planned(tmp_path: Path, slug: str, plans: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORK": str(tmp_path / "work"), "OUT": str(tmp_path / "out"), "GPU_SLUG": slug,
           "PLAN_DIR": str(plans)}
    return subprocess.run(["bash", "bench/host.sh", "planned"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)


def test_planned_runs_the_plan_of_this_card_only(tmp_path):
    plans = tmp_path / "plans"
    plans.mkdir()
    for card in ("h100", "h200"):
        (plans / f"{card}.sh").write_text(f'echo "$PWD" > "{tmp_path}/ran-{card}"\n')
    done = planned(tmp_path, "h200", plans)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "ran-h200").read_text().strip() == str(REPO)     # from the repo root, as the plans expect
    assert not (tmp_path / "ran-h100").exists()


def test_a_card_without_a_plan_fails_with_one_line(tmp_path):
    done = planned(tmp_path, "a100", tmp_path)
    assert done.returncode != 0
    assert done.stderr.strip() == f"error: no session plan for this card ({tmp_path}/a100.sh)"


def test_the_committed_plans_start_known_steps():
    """Each committed plan starts its steps in the background (the install call must return to keep a wait in
    flight) and names only steps host.sh has."""
    host = (REPO / "bench" / "host.sh").read_text()
    plans = sorted((REPO / "bench" / "plans").glob("*.sh"))
    assert plans
    for plan in plans:
        text = plan.read_text().replace("\\\n", " ")
        starts = [line for line in text.splitlines() if "bash bench/host.sh start-bg" in line]
        assert starts, f"{plan.name}: no start-bg"
        for line in starts:
            for step in line.split("start-bg", 1)[1].split():
                assert f"\n    {step})" in host, f"{plan.name}: unknown step {step}"
