"""Optuna autotuner: search space, isolated trial worker, study storage, CLI and freeze.

Layout (MetaSchedule's split, Optuna as strategy + database):
  space.py     SearchSpace: BuildConfig <-> Optuna parameters; known seed configs
  worker.py    one trial in its own process: prepare -> build -> evaluate -> result.json
  runner.py    runs the worker (GPU, timeout, logs) -> TrialOutcome
  objective.py the Optuna objective: user attrs, artifacts, TrialFailed
  storage.py   RDBStorage, studies, constraints, best feasible trial
  tuning.py    seeding and the per-GPU optimize loops (gpu_loop.py: the child process)
  results.py   status, best, export, plot; freeze.py: configs/<model>.yaml
  cli.py       python -m search VERB
"""
