import math

import numpy as np
import pytest

from scoring.metrics import CaseErrors, check, compare_case
from scoring.objective import BAD_FACTOR, CaseResult, constraint, contest_score, objective


def test_check_matches_hand_computed_values():
    b = np.array([1.0, -2.0, 4.0, 0.0], dtype=np.float32)
    a = b + np.array([0.1, 0.0, -0.4, 1e-6], dtype=np.float32)
    a0, r0 = check(a, b, 1e-5)
    assert a0 == pytest.approx(0.4, rel=1e-6)
    rel = np.abs(a.astype(np.float64) - b) / (np.abs(b) + 1e-5)
    assert r0 == pytest.approx(float(np.median(rel)))


def test_check_over_several_chunks_is_the_whole_array_formula():
    """check works a chunk at a time (a decoder output is 43 M elements): every element counts, the tail
    chunk too, and the numbers are those of the plain float64 expression; a NaN anywhere stays NaN."""
    from scoring.metrics import _CHUNK, max_errors

    rng = np.random.default_rng(3)
    b = rng.standard_normal(2 * _CHUNK + 7).astype(np.float32).reshape(-1, 1)
    a = b + rng.standard_normal(b.shape).astype(np.float32) * np.float32(1e-3)
    a[-1, 0] += 50.0                                      # the largest error sits in the tail chunk
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    rel = diff / (np.abs(b.astype(np.float64)) + 1e-5)
    assert check(a, b, 1e-5) == (float(diff.max()), float(np.median(rel)))
    assert max_errors(a, b, 1e-5) == (float(diff.max()), float(rel.max()))
    a[_CHUNK + 1, 0] = np.nan
    assert all(math.isnan(x) for x in check(a, b, 1e-5))


def test_check_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        check(np.zeros((2, 3)), np.zeros((3, 2)), 1e-5)


def _encoder_case(a0=0.0, r0=0.0, r1=0.0):
    return CaseErrors(a0=a0, r0=r0, a1=0.0, r1=r1, model="encoder")


@pytest.mark.parametrize("errors,good", [
    (_encoder_case(), True),
    (_encoder_case(a0=3.4e-2, r0=1.9e-3), True),
    (_encoder_case(a0=3.5e-2), False),          # limits are strict
    (_encoder_case(r0=2.1e-3), False),
    (_encoder_case(r1=0.2), False),
    (_encoder_case(a0=float("nan")), False),
])
def test_encoder_good_bad(errors, good):
    assert errors.good is good


def test_decoder_thresholds():
    ok = CaseErrors(a0=0.39, r0=1.9e-4, a1=0.0, r1=0.0, model="decoder")
    bad = CaseErrors(a0=0.1, r0=3e-4, a1=0.0, r1=0.0, model="decoder")
    assert ok.good and not bad.good
    assert bad.worst_ratio == pytest.approx(1.5)


def test_compare_case_reduces_the_encoder_mask():
    lens = np.array([5, 3], dtype=np.int32)
    mask = np.zeros((2, 1, 5), dtype=bool)
    mask[0, 0, :5] = True
    mask[1, 0, :3] = True
    out = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    errs = compare_case("encoder", {"encoder_out": out, "encoder_out_lens": lens},
                        {"encoder_out": out, "encoder_out_lens": mask})
    assert errs.good and errs.a1 == 0.0
    errs = compare_case("encoder", {"encoder_out": out, "encoder_out_lens": lens + 1},
                        {"encoder_out": out, "encoder_out_lens": mask})
    assert not errs.good and errs.a1 == 1.0


def test_objective_is_total_latency_when_good_and_penalised_when_bad():
    good = CaseResult(1, 16, 2.0, _encoder_case())
    bad = CaseResult(4, 16, 3.0, _encoder_case(r0=6e-3))      # 3x the threshold
    assert objective([good]) == pytest.approx(2.0)
    assert objective([good, bad]) == pytest.approx(2.0 + 3.0 * BAD_FACTOR * 3.0)
    assert constraint([good]) < 0 < constraint([good, bad])
    assert contest_score([good]) == pytest.approx(500.0)


def test_barely_bad_case_is_still_infeasible_and_costs_double():
    edge = CaseResult(1, 16, 1.0, _encoder_case(r0=2e-3))
    assert constraint([edge]) > 0
    assert objective([edge]) == pytest.approx(BAD_FACTOR)


def test_non_finite_errors():
    nan = CaseResult(1, 16, 1.0, _encoder_case(a0=float("nan")))
    inf = CaseResult(1, 16, 1.0, _encoder_case(a0=math.inf))
    assert constraint([inf]) == 1e9
    assert not nan.errors.good
    assert objective([inf]) == math.inf


def test_objective_needs_cases():
    with pytest.raises(ValueError):
        objective([])


def test_nan_error_is_the_worst_ratio():
    assert _encoder_case(r0=float("nan")).worst_ratio == math.inf
    assert constraint([CaseResult(1, 16, 1.0, _encoder_case(r0=float("nan")))]) == 1e9
