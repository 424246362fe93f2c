"""bench/: GPU-host scripts (run as files, `python3 bench/layouts.py`) and the report (`python3 -m bench.report`).

A regular package so `import bench.report` finds this folder and not tests/bench.
"""
