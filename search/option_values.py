"""Parsers of flag values that are lists (GPU ids, seed labels, a command line): text -> value,
a bad one a one-line SearchError. search/options.py declares the flags that use them."""
from __future__ import annotations

import shlex

from search.errors import SearchError


def parse_gpus(text: str) -> tuple[str, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise SearchError(f"--gpus {text!r}: expected GPU ids like 0 or 0,1")
    if len(set(parts)) != len(parts):
        raise SearchError(f"--gpus {text!r} repeats a GPU")
    return tuple(parts)


def parse_seed_labels(text: str) -> tuple[str, ...] | None:
    """--seeds: None for all, () for none, else the labels in the order given (checked against the
    harness's seeds by search.tuning before anything is written)."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    if words == ["all"]:
        return None
    if words == ["none"]:
        return ()
    if not words or "all" in words or "none" in words:
        raise SearchError(f"--seeds {text!r}: expected all, none or seed labels like baseline,per_batch_tf32")
    if len(set(words)) != len(words):
        raise SearchError(f"--seeds {text!r} repeats a label")
    return tuple(words)


def parse_names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names (--precision-groups): none empty, none repeated (checked against the
    model's groups when its space is made)."""
    words = tuple(w.strip() for w in text.split(","))
    if not all(words) or len(set(words)) != len(words):
        raise SearchError(f"{text!r}: expected distinct comma-separated names such as softmax,output")
    return words


def parse_command(text: str) -> tuple[str, ...]:
    words = tuple(shlex.split(text))
    if not words:
        raise SearchError("--worker-command is empty")
    return words
