"""Build progress: TensorRT's IProgressMonitor phases (TensorRT >= 10) and an elapsed-time line for 8.6."""
from __future__ import annotations

import sys
import threading
import time

from engine.trt_compat import import_tensorrt


class PhaseTracker:
    """Nested build phases and their step counts, as IProgressMonitor reports them (CPU-testable)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phases: dict[str, list] = {}     # name -> [parent, steps, done]
        self.order: list[str] = []

    def start(self, name: str, parent: str | None, steps: int) -> None:
        with self.lock:
            self.phases[name] = [parent, int(steps), 0]
            if name in self.order:
                self.order.remove(name)
            self.order.append(name)

    def step(self, name: str, step: int) -> None:
        with self.lock:
            if name in self.phases:
                self.phases[name][2] = int(step) + 1

    def finish(self, name: str) -> None:
        with self.lock:
            self.phases.pop(name, None)
            if name in self.order:
                self.order.remove(name)

    def describe(self) -> str:
        with self.lock:
            return " > ".join(f"{n} {self.phases[n][2]}/{self.phases[n][1]}" for n in self.order)


def make_progress_monitor(tracker: PhaseTracker, trt=None):
    """A trt.IProgressMonitor feeding `tracker`, or None where TensorRT has no IProgressMonitor (8.6)."""
    trt = trt or import_tensorrt()
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class Monitor(base):
        def __init__(self) -> None:
            base.__init__(self)
            self.tracker = tracker

        def phase_start(self, phase_name, parent_phase, num_steps):
            try:
                self.tracker.start(str(phase_name), parent_phase, num_steps)
            except Exception:
                pass

        def step_complete(self, phase_name, step):
            try:
                self.tracker.step(str(phase_name), step)
            except Exception:
                pass
            return True       # False would cancel the build

        def phase_finish(self, phase_name):
            try:
                self.tracker.finish(str(phase_name))
            except Exception:
                pass

    return Monitor()


class ElapsedIndicator:
    """A background line 'building encoder: 95 s [phase 3/10]' on stderr while a build runs.

    On a terminal it rewrites one line; otherwise it prints a line every `every_s`
    seconds (logs stay short). Uses tqdm when installed and stderr is a terminal.
    """

    def __init__(self, label: str, tracker: PhaseTracker | None = None, every_s: float = 30.0,
                 stream=None) -> None:
        self.label = label
        self.tracker = tracker
        self.every_s = every_s
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = 0.0

    def _text(self) -> str:
        phase = self.tracker.describe() if self.tracker is not None else ""
        return f"{self.label}: {time.monotonic() - self.t0:.0f} s" + (f" [{phase}]" if phase else "")

    def _run(self) -> None:
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        bar = None
        if tty:
            try:
                from tqdm import tqdm
                bar = tqdm(total=None, desc=self.label, bar_format="{desc}: {elapsed} {postfix}", file=self.stream)
            except ImportError:
                bar = None
        last = time.monotonic()
        while not self._stop.wait(1.0 if tty else max(0.05, min(self.every_s, 5.0))):
            if bar is not None:
                bar.set_postfix_str(self.tracker.describe() if self.tracker else "", refresh=True)
            elif tty:
                print("\r" + self._text(), end="", file=self.stream, flush=True)
            elif time.monotonic() - last >= self.every_s:
                print(self._text(), file=self.stream, flush=True)
                last = time.monotonic()
        if bar is not None:
            bar.close()
        elif tty:
            print("\r" + self._text(), file=self.stream, flush=True)

    def __enter__(self) -> "ElapsedIndicator":
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="build-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
