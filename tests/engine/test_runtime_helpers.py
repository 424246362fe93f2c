"""TrtRunner's pure checks: feed names, casts, ranks, loop counts, summaries."""
from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from engine.runtime import cast_feed, check_feed_names, check_rank, loop_counts, summarize_ms


def test_feed_names_must_match_exactly():
    check_feed_names(["speech", "speech_lengths"], ["speech_lengths", "speech"])
    with pytest.raises(InputError, match=r"missing \['speech_lengths'\].*expected exactly"):
        check_feed_names(["speech", "speech_lengths"], ["speech"])
    with pytest.raises(InputError, match=r"unexpected \['bogus'\]"):
        check_feed_names(["speech"], ["speech", "bogus"])


def test_cast_feed():
    out = cast_feed("x", np.arange(6, dtype=np.float64).reshape(2, 3)[:, ::2], np.float32)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert cast_feed("n", np.array([3, 4], dtype=np.int64), np.int32).dtype == np.int32
    assert cast_feed("b", np.array([True]), np.int32).tolist() == [1]
    with pytest.raises(InputError, match="refusing to truncate"):
        cast_feed("n", np.array([1.5]), np.int32)
    with pytest.raises(InputError, match="do not fit"):
        cast_feed("n", np.array([2**40]), np.int32)
    with pytest.raises(InputError, match="cannot cast"):
        cast_feed("s", np.array(["a"]), np.float32)


def test_check_rank():
    check_rank("x", (4, 64, 80), (-1, -1, 80))
    with pytest.raises(InputError, match="rank 2"):
        check_rank("x", (64, 80), (-1, -1, 80))
    with pytest.raises(InputError, match="does not fit"):
        check_rank("hyps", (4, 10, 63), (-1, 10, 64))


def test_loop_counts():
    assert loop_counts("robust", None, None, None) == (10, 30)
    assert loop_counts("contest", "encoder", None, None) == (2, 2)
    assert loop_counts("contest", "decoder", None, 5) == (10, 5)
    assert loop_counts("contest", None, 1, 3) == (1, 3)
    with pytest.raises(InputError, match="timing mode"):
        loop_counts("fast", "encoder", None, None)
    with pytest.raises(InputError, match="needs warmup"):
        loop_counts("contest", None, None, None)
    with pytest.raises(InputError, match="runs 0"):
        loop_counts("robust", None, 1, 0)


def test_summaries():
    assert summarize_ms([3.0, 1.0, 2.0, 100.0], "robust") == 2.5
    assert summarize_ms([1.0, 2.0, 6.0], "contest") == 3.0
