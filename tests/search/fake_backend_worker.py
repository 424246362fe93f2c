"""The real trial worker (search.worker) over the backend test double (tests/engine/fake_backend.py),
for CPU tests of whole tuning runs: prepare, engine cache, build, inspect and evaluate are real.

    python tests/search/fake_backend_worker.py --request work/trials/<study>/<n>/request.json

Writes the fake's build count of this trial to <trial dir>/fake_builds.txt (0 when the engine
cache supplied the plan).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "engine")]

from with_fake_backend import install_in_process  # noqa: E402

from search import worker  # noqa: E402
from search.request import read_request  # noqa: E402


def main(argv: list[str]) -> int:
    out = Path(read_request(worker.parse_args(argv).request).out)
    fake = install_in_process("8.6.0")
    try:
        return worker.main(argv)
    finally:
        out.mkdir(parents=True, exist_ok=True)
        (out / "fake_builds.txt").write_text(str(fake.stats["builds"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
