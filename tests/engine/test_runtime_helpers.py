"""TrtRunner's pure checks: feed names, casts, ranks, the harnesses' loop counts, summaries."""
from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError
from engine.harness import DEFAULT_HARNESS, HARNESSES, get_harness
from engine.runtime import cast_feed, check_feed_names, check_rank, summarize_ms


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


def test_harness_loops():
    contest, serving = HARNESSES["contest"], HARNESSES["serving"]
    assert contest.loops() == (10, 30) and serving.loops() == (10, 30)       # the organisers' 10 + 30
    assert contest.loops(None, 5) == (10, 5) and serving.loops(0, None) == (0, 30)
    assert serving.loops(1, 3) == (1, 3)
    for warmup, runs in ((None, 0), (-1, None), (1.5, None), (True, 3), (None, "3")):
        with pytest.raises(InputError, match="warmup .* runs"):
            contest.loops(warmup, runs)


def test_get_harness_and_variants():
    assert get_harness("contest") is HARNESSES["contest"] and DEFAULT_HARNESS in HARNESSES
    with pytest.raises(InputError, match="'fast' is not one of contest, serving"):
        get_harness("fast")
    contest, serving = HARNESSES["contest"], HARNESSES["serving"]
    assert not contest.select_profiles and not contest.cuda_graphs and contest.timing == "contest"
    assert serving.select_profiles and serving.cuda_graphs and serving.timing == "robust"
    plain = serving.with_options(cuda_graphs=False)
    assert not plain.cuda_graphs and serving.cuda_graphs and plain.label == "serving-nographs"
    assert serving.with_options(cuda_graphs=True) is serving and serving.with_options() is serving
    assert serving.label == "serving" and contest.label == "contest"


def test_summaries():
    assert summarize_ms([3.0, 1.0, 2.0, 100.0], "robust") == 2.5
    assert summarize_ms([1.0, 2.0, 6.0], "contest") == 3.0


def test_check_rank_lets_a_paddable_axis_be_smaller():
    # every profile fixed at batch 4: a batch-2 feed is padded up, a batch-5 one cannot be
    check_rank("x", (2, 64, 80), (4, -1, 80), paddable={0, 1})
    with pytest.raises(InputError, match="does not fit"):
        check_rank("x", (5, 64, 80), (4, -1, 80), paddable={0, 1})
    with pytest.raises(InputError, match="does not fit"):
        check_rank("x", (2, 64, 80), (4, -1, 80))
