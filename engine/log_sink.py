"""The Python side of TensorRT's logger: a per-build log file, stderr echo, the last errors (no TensorRT).

Every backend writes its messages here, so BuildError / PlanError texts carry the
backend's own last errors, and `build_engine(log_path=...)` gets one file per build.
"""
from __future__ import annotations

import collections
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SEVERITY_NAMES = {0: "INTERNAL_ERROR", 1: "ERROR", 2: "WARNING", 3: "INFO", 4: "VERBOSE"}


class LogSink:
    """Where a backend's messages go (levels: 0 internal error, 1 error, 2 warning, 3 info, 4 verbose)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.file = None
        self.file_level = 3            # INFO and more severe go to the file
        self.echo_level = 2            # WARNING and more severe go to stderr when no file is open
        self.recent_errors: collections.deque[str] = collections.deque(maxlen=20)

    def write(self, level: int, msg: str) -> None:
        msg = str(msg).rstrip()
        with self.lock:
            if level <= 1:
                self.recent_errors.append(msg)
            if self.file is not None:
                if level <= self.file_level:
                    self.file.write(f"{time.strftime('%H:%M:%S')} [{SEVERITY_NAMES.get(level, level)}] {msg}\n")
                    self.file.flush()
                echo = level <= 1
            else:
                echo = level <= self.echo_level
        if echo:
            print(f"[TensorRT {SEVERITY_NAMES.get(level, level)}] {msg}", file=sys.stderr)

    @contextmanager
    def to_file(self, path: str | Path | None, verbose: bool = False) -> Iterator[None]:
        """Send messages to `path` (overwritten) while the block runs; only errors reach stderr."""
        if path is None:
            yield
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "w", encoding="utf-8")
        with self.lock:
            previous, previous_level = self.file, self.file_level
            self.file, self.file_level = fh, 4 if verbose else 3
        try:
            yield
        finally:
            with self.lock:
                self.file, self.file_level = previous, previous_level
            fh.close()

    def last_errors(self, n: int = 3) -> list[str]:
        with self.lock:
            return list(self.recent_errors)[-n:]

    def clear_errors(self) -> None:
        with self.lock:
            self.recent_errors.clear()


_SINK = LogSink()


def process_sink() -> LogSink:
    """The one sink of this process (TensorRT keeps the first logger it is given)."""
    return _SINK
