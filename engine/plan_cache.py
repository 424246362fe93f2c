"""The engine cache: a built plan is kept under a key of everything that decides its bytes, so an
equal build is never run twice (TensorRT builds take 13-600 s on the H200).

    key = plan_key(source_onnx, prepared_onnx, config, tensorrt_version="8.6.0", gpu="NVIDIA H200",
                   plugin_libs=libs, calibration=None)
    cache = PlanCache("work/plans", max_bytes=20 << 30)
    if cache.fetch(key.key, "trial/encoder.plan") is None:       # a miss
        build_engine(...); cache.store(key.key, "trial/encoder.plan", {"build_report": ...})

What the key covers (`plan_key`; the inputs stay in the sidecar JSON, `material`):
  - the source ONNX's and the prepared ONNX's content hashes (sha256),
  - every BuildConfig field (`BuildConfig.to_dict()`: a field added later is covered without
    touching this module) and what of the workload spec decides a build (its input dims and
    ranges, default buckets, layer groups: `Workload.build_material()`),
  - the TensorRT version and the GPU name (the backend supplies them; the key is refused
    for an unreadable GPU name rather than shared between GPUs),
  - the content hash of every plugin library, in load order, and of the calibration data when
    the config uses INT8,
  - the source of the engine modules that turn a config into builder calls (BUILDER_MODULES)
    and PLAN_CACHE_VERSION (bump it when anything else changes what a build produces).
The timing cache is not in the key: it only speeds a build up, any plan it yields is a build of
the config.

The store (`PlanCache`) is a directory of `<key>.plan` + `<key>.json` (the key's material, the
build report, size, last use). Files are written aside and renamed into place, so tuning
processes sharing the directory (one per GPU) never read half a plan. Plans are large: the
directory is capped at `max_bytes`, least recently used first out. A plan enters and leaves
the cache by hard link where the file system allows (no copy of hundreds of MB), so a trial
holding its own link keeps its plan even when the cache evicts it. Pure: no TensorRT here.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from engine.config import BuildConfig
from engine.prepare import file_sha256

PLAN_CACHE_VERSION = 1
ENGINE_DIR = Path(__file__).resolve().parent
# The modules that decide what a BuildConfig builds (flags, profiles, per-layer precision,
# calibration): an edit to one of them makes every stored plan stale.
BUILDER_MODULES = ("build.py", "trt_build.py", "build_report.py", "settings.py", "precision.py", "profiles.py",
                   "layer_groups.py", "calibrator.py", "config.py")
UNKNOWN_GPU = "unknown GPU"          # the backend's gpu_name() when it cannot read the name
GIB = 1 << 30


class PlanKeyError(ValueError):
    """The inputs of a key cannot be read (a missing file, an unknown GPU): one line."""


@dataclass(frozen=True)
class PlanKey:
    key: str                          # 32 hex digits, the file name stem in the store
    material: dict[str, Any]          # what went into it (stored beside the plan)


def builder_code_hash(modules: Iterable[str] = BUILDER_MODULES, base: Path = ENGINE_DIR) -> str:
    h = hashlib.sha256()
    for name in modules:
        h.update(name.encode() + b"\0" + (base / name).read_bytes() + b"\0")
    return h.hexdigest()


def key_of(material: dict[str, Any]) -> str:
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def plan_key(source_onnx: str | Path, prepared_onnx: str | Path, config: BuildConfig, *,
             tensorrt_version: str, gpu: str, plugin_libs: Sequence[str | Path] = (),
             calibration: str | Path | None = None) -> PlanKey:
    """The cache key of building `prepared_onnx` (made from `source_onnx`) with `config` here."""
    if not gpu or gpu == UNKNOWN_GPU:
        raise PlanKeyError("the GPU name is unknown: a plan must not be shared between GPUs")
    if not tensorrt_version:
        raise PlanKeyError("the TensorRT version is unknown")

    def digest(path: str | Path, what: str) -> str:
        try:
            return file_sha256(Path(path))
        except OSError as exc:
            raise PlanKeyError(f"cannot hash {what} {path}: {exc.strerror or exc}") from None

    material = {
        "version": PLAN_CACHE_VERSION,
        "source_onnx": digest(source_onnx, "the source ONNX"),
        "prepared_onnx": digest(prepared_onnx, "the prepared ONNX"),
        "config": config.to_dict(),
        "workload": config.workload.build_material(),
        "tensorrt": str(tensorrt_version),
        "gpu": str(gpu),
        "plugin_libs": [digest(p, "plugin library") for p in plugin_libs],
        "calibration": digest(calibration, "calibration data") if (config.uses_int8 and calibration) else None,
        "builder_code": builder_code_hash(),
    }
    return PlanKey(key_of(material), material)


def tensorrt_and_gpu() -> tuple[str, str]:
    """(TensorRT version, GPU name) of this process, from the backend (engine.backend, imported here, lazily)."""
    from engine.backend import get_backend

    backend = get_backend()
    return backend.version(), backend.gpu_name()


def _link_or_copy(src: Path, dest: Path) -> None:
    """dest becomes src's content, atomically: a hard link where possible, else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


@dataclass
class CachedPlan:
    key: str
    path: Path                         # the plan in the store
    meta: dict[str, Any]               # the sidecar: material, build_report, plan_bytes, stored, last_used


class PlanCache:
    """A directory of plans by key, at most `max_bytes` of them (least recently used evicted first).

    max_bytes <= 0: off (fetch finds nothing, store keeps nothing). `clock`: seconds, for tests.
    """

    def __init__(self, root: str | Path, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def plan_path(self, key: str) -> Path:
        return self.root / f"{key}.plan"

    def meta_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def lookup(self, key: str) -> CachedPlan | None:
        """The stored plan of `key` (its last use set to now), or None."""
        if not self.enabled:
            return None
        plan, meta_path = self.plan_path(key), self.meta_path(key)
        try:
            meta = json.loads(meta_path.read_text())
            size = plan.stat().st_size
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("plan_bytes") != size:
            return None                     # half-evicted or damaged: a miss, rebuilt and stored again
        meta["last_used"] = self.clock()
        meta["hits"] = int(meta.get("hits", 0)) + 1
        try:
            _write_json(meta_path, meta)
        except OSError:
            pass                            # a read-only store still serves plans
        return CachedPlan(key, plan, meta)

    def fetch(self, key: str, dest: str | Path) -> CachedPlan | None:
        """Link (or copy) the stored plan of `key` to `dest`; None on a miss.

        The trial then holds its own link: an eviction by another process cannot take it away.
        """
        hit = self.lookup(key)
        if hit is None:
            return None
        try:
            _link_or_copy(hit.path, Path(dest))
        except OSError:
            return None                     # evicted between lookup and link
        return hit

    def store(self, key: str, plan: str | Path, meta: dict[str, Any] | None = None) -> str | None:
        """Keep `plan` under `key`, then evict down to the cap; returns why not when it was not kept."""
        if not self.enabled:
            return "engine cache off"
        plan = Path(plan)
        size = plan.stat().st_size
        if size > self.max_bytes:
            return f"plan of {size / GIB:.2f} GiB exceeds the engine cache's cap of {self.max_bytes / GIB:.2f} GiB"
        self.root.mkdir(parents=True, exist_ok=True)
        now = self.clock()
        _link_or_copy(plan, self.plan_path(key))
        _write_json(self.meta_path(key), {**(meta or {}), "key": key, "plan_bytes": size, "stored": now,
                                          "last_used": now, "hits": 0})
        self.evict(keep=key)
        return None

    def entries(self) -> list[CachedPlan]:
        out = []
        for meta_path in self.root.glob("*.json"):
            key = meta_path.stem
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                meta = {}
            if not isinstance(meta, dict):
                meta = {}
            out.append(CachedPlan(key, self.plan_path(key), meta))
        return out

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("*.plan") if p.is_file())

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least recently used plans (and plans without a sidecar) until the store fits its cap."""
        if not self.root.is_dir():
            return []
        removed = []
        known = {e.key for e in self.entries()}
        for orphan in self.root.glob("*.plan"):          # a store interrupted before its sidecar
            if orphan.stem not in known and orphan.stem != keep and self.clock() - orphan.stat().st_mtime > 3600:
                orphan.unlink(missing_ok=True)
        total = self.total_bytes()
        entries = sorted(self.entries(), key=lambda e: float(e.meta.get("last_used") or 0.0))
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.key == keep:
                continue
            size = entry.path.stat().st_size if entry.path.is_file() else 0
            self.meta_path(entry.key).unlink(missing_ok=True)   # sidecar first: no reader trusts a half entry
            entry.path.unlink(missing_ok=True)
            total -= size
            removed.append(entry.key)
        return removed


def cached_plan_summary(hit: CachedPlan) -> dict[str, Any]:
    """What a trial that re-used a plan records about it."""
    return {k: hit.meta.get(k) for k in ("key", "stored", "hits", "plan_bytes", "built_by", "build_s")}

