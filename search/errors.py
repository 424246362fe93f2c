"""Exceptions of the search package: each carries one line for `error: ...`."""
from __future__ import annotations

from workload.errors import OneLineError


class SearchError(OneLineError):
    """Bad input to the search (unknown model, bad storage URL, nothing to freeze...)."""


class SpaceError(SearchError):
    """A config that the search space cannot represent, or a bad space option."""


class StorageError(SearchError):
    """The study storage cannot be opened or the study does not exist."""


class NoFeasibleTrial(SearchError):
    """A study has no COMPLETE trial whose every test case is Good."""
