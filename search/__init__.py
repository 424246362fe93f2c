"""Optuna autotuner: search space, isolated trial worker, study storage, CLI and freeze.

Layout (MetaSchedule's split, Optuna as strategy + database):
  options.py   every option of a run, declared once (dataclass fields carry their CLI flags);
               option_values.py: parsers of list-valued flags (GPU ids, seed labels, a command)
  space.py     SearchSpace: BuildConfig <-> Optuna parameters; seeds.py: the known seed configs
  request.py   the worker's one input file (paths + TrialOptions)
  worker.py    one trial in its own process: prepare -> build -> evaluate -> result.json
  runner.py    runs the worker (GPU, timeout, logs) -> TrialOutcome
  objective.py the Optuna objective: user attrs, artifacts, TrialFailed
  storage.py   RDBStorage, study names (wenet-<model>-<harness>), constraints, best feasible trial
  tuning.py    seeding and the per-GPU optimize loops (gpu_loop.py: the child process)
  results.py   status, best, export, plot; freeze.py: configs/<model>.yaml
  cli.py       python -m search VERB
"""
