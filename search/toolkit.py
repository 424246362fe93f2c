"""Whose timings a timing cache holds: the TensorRT version and GPU model of the run (found without
importing TensorRT or starting CUDA in the tuner) and the trial's precision family. A cache is specific
to all three, so its file name carries them (a carried cache never reaches another TensorRT, GPU or
set of precision flags by mistake).
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

# pip distributions that install the `tensorrt` module (8.x: tensorrt; 10.x: tensorrt-cu12/-cu13 too)
TENSORRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-cu11")


def gpu_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100', 'Tesla T4' -> 't4', 'GeForce RTX 4090' -> 'rtx-4090', else the name dashed."""
    m = re.search(r"\b([A-Z]{1,3}\d{1,4}[A-Za-z]?)\b", name or "")
    if m:
        return m.group(1).lower()
    m = re.search(r"\bRTX\s+(\w+)", name or "")
    if m:
        return f"rtx-{m.group(1).lower()}"
    slug = re.sub(r"[^a-z0-9]+", "-", (name or "unknown").lower()).strip("-")
    return slug or "unknown"


@functools.lru_cache(maxsize=None)
def tensorrt_version() -> str:
    """The installed TensorRT's version ('8.6.0'), 'none' where no distribution of it is installed."""
    for dist in TENSORRT_DISTRIBUTIONS:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    # a module without pip's metadata (copied in by hand): its __version__ line, still without importing it
    try:
        spec = importlib.util.find_spec("tensorrt")
        text = Path(spec.origin).read_text(errors="replace") if spec and spec.origin else ""
    except (ImportError, ValueError, OSError):
        text = ""
    m = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.M)
    return m.group(1) if m else "none"


@functools.lru_cache(maxsize=None)
def gpu_name(gpu: str) -> str:
    """nvidia-smi's name of GPU `gpu` (its index); 'unknown' where nvidia-smi cannot say."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", str(gpu)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    name = done.stdout.strip().splitlines()[0].strip() if done.returncode == 0 and done.stdout.strip() else ""
    return name or "unknown"


def toolkit_key(gpu: str) -> str:
    """'trt8.6.0-h200': the part of a timing cache's name that says whose timings it holds."""
    return f"trt{tensorrt_version()}-{gpu_slug(gpu_name(gpu))}"


LEGACY_TOOLKIT = "trt8.6.0-h200"      # the only TensorRT and GPU the unkeyed cache names were used with


def timing_cache_file(work: Path, model: str, harness: str, gpu: str, several_gpus: bool) -> Path:
    """work/timing-<model>-<harness>-trt<version>-<gpu model>[-gpu<id>].cache (the id with several GPUs:
    a shared cache would need a lock held through every build). A cache of the older, unkeyed name
    seeds it once where the key is LEGACY_TOOLKIT's, the rig all those caches came from."""
    tail, key = (f"-gpu{gpu}" if several_gpus else ""), toolkit_key(gpu)
    path = Path(work) / f"timing-{model}-{harness}-{key}{tail}.cache"
    legacy = Path(work) / f"timing-{model}-{harness}{tail}.cache"
    if not path.exists() and legacy.is_file() and key == LEGACY_TOOLKIT:
        shutil.copyfile(legacy, path)
        print(f"note: {path.name} starts from {legacy.name} (written before caches were keyed by "
              "TensorRT version and GPU)", file=sys.stderr)
    return path


def precision_family(config) -> str:
    """'fp32', 'tf32', 'fp16', 'fp16-tf32', 'int8-fp16', ...: the builder flags that change which kernels
    a layer may get (NVIDIA: a timing cache is specific to flags such as TF32), so each set has its cache."""
    flags = (("int8", config.uses_int8), ("fp16", config.fp16), ("tf32", config.tf32))
    return "-".join(name for name, on in flags if on) or "fp32"


def family_cache(base: Path, config) -> Path:
    """The timing cache of `config`'s precision family beside `base` (the run's keyed cache), started
    once from `base` where that exists (caches of earlier sessions held every family in one file)."""
    base = Path(base)
    path = base.with_name(f"{base.stem}-{precision_family(config)}{base.suffix}")
    if not path.exists() and base.is_file():
        try:
            shutil.copyfile(base, path)
        except OSError as exc:          # only a slower build: the trial goes on with an empty cache
            print(f"note: {path.name} not started from {base.name}: {exc}", file=sys.stderr)
    return path
