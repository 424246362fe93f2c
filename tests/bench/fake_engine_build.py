"""Stands in for `python -m engine build` in bench/cache_builds.py's tests: a build that is slow with an empty
timing cache and fast with one, writes the cache, the plan and the report; --fail-label makes one config fail."""
import argparse
import json
import sys
from pathlib import Path

p = argparse.ArgumentParser()
for flag in ("--config", "--onnx", "--out", "--timing-cache", "--work-dir", "--log", "--report", "--fail-label"):
    p.add_argument(flag)
p.add_argument("--no-progress", action="store_true")
p.add_argument("--no-layer-info", action="store_true")
p.add_argument("--plugins", nargs="*", default=[])
a = p.parse_args()
if a.fail_label and a.fail_label in Path(a.config).name:
    print("error: builder returned no engine (fake)", file=sys.stderr)
    sys.exit(2)
cache = Path(a.timing_cache)
loaded = cache.read_bytes() if cache.is_file() else b""
cache.write_bytes(loaded + b"x" * 100)                      # the build adds its tactics
Path(a.out).write_bytes(b"plan")
Path(a.report).write_text(json.dumps({"build_s": 2.0 if loaded else 8.0,
                                      "timing_cache": {"loaded_bytes": len(loaded), "saved_bytes": len(loaded) + 100}}))
