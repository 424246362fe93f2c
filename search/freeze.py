"""`freeze`: the best feasible trial's config -> configs/<model>.yaml (+ its timing cache).

One harness's study per model (`freeze --harness contest|serving`); the header names
the harness the trial was measured with. The config is written exactly as sampled
(no re-tuning, no raised opt level), so build.sh builds what was measured. The
comment header says where it came from; BuildConfig.load ignores comments.
"""
from __future__ import annotations

import datetime as _dt
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna

from search.results import config_of
from search.storage import best_feasible_trial, harness_of_study, safe_url, trial_constraint


@dataclass
class Frozen:
    model: str
    config_path: Path
    timing_cache: Path | None
    trial: int
    value: float
    harness: str


def config_path(out_dir: Path, model: str) -> Path:
    """Where build.sh looks for the tuned config."""
    return Path(out_dir) / f"{model}.yaml"


def timing_cache_path(out_dir: Path, model: str) -> Path:
    return Path(out_dir) / f"{model}.timing.cache"


def freeze_study(study: optuna.Study, out_dir: Path, storage_url: str) -> Frozen:
    """Write the best feasible trial's config; NoFeasibleTrial when there is none."""
    best = best_feasible_trial(study)
    config = config_of(best)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    harness = best.user_attrs.get("harness") or harness_of_study(study)
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"# Frozen by `python -m search freeze` on {when}.\n"
              f"# study {study.study_name} in {safe_url(storage_url)}, trial {best.number}: "
              f"objective {best.value:.3f} ms, constraint {trial_constraint(best):.3g}"
              f"{', gpu ' + best.user_attrs['gpu'] if 'gpu' in best.user_attrs else ''}.\n"
              f"# harness {harness} (engine/harness.py): how the trial's engine was run and timed.\n")
    path = config_path(out_dir, config.model)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(header + config.to_yaml())
    tmp.replace(path)

    cache_dst = None
    cache_src = best.user_attrs.get("timing_cache")
    if cache_src and Path(cache_src).is_file():
        cache_dst = timing_cache_path(out_dir, config.model)
        shutil.copyfile(cache_src, cache_dst)
    else:
        print(f"warning: timing cache {cache_src or '(not recorded)'} of trial {best.number} is gone; "
              f"{config.model} builds without one (slower build, same config)", file=sys.stderr)
    return Frozen(config.model, path, cache_dst, best.number, float(best.value), harness)
