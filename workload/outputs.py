"""Output paths, checked before any work starts: a command that will fail to write its result
must say so at once, not after an hour of building (and must not leave folders behind).

Nothing here creates anything: the checks only look at what exists.
"""
from __future__ import annotations

import os
from pathlib import Path

from workload.errors import OneLineError


class OutputPathError(OneLineError):
    """An output file or folder that cannot be written."""


def _first_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _creatable(path: Path, folder: Path, what: str) -> None:
    """`folder` exists or can be created: the nearest existing path at or above it is a writable folder."""
    base = _first_existing(folder.absolute())
    if not base.is_dir():
        raise OutputPathError(f"{what} {path} cannot be written: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {path} cannot be written: folder {base} is not writable")


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """A folder that exists or can be created: no file in its place or above it, writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {path} is a file, not a folder")
    _creatable(path, path, what)
    return path


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """A file that can be written: not a folder, its folder exists or can be created."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{what} {path} is not writable")
    _creatable(path, path.parent, what)
    return path
