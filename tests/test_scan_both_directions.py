"""Both directions of the baseline's scan from one sort, against sorting -x again
(`scan_thresholds` of the negated samples) and numpy's stable argsort of -x."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vbsad_batch.scan.both_directions import mirrored_order, scan_both_directions
from vbsad_batch.scan.statistics import ScoreSample, ThresholdScan, scan_thresholds


def _negated(sample: ScoreSample) -> ScoreSample:
    return ScoreSample(score=-sample.score, yield_=sample.yield_)


def _assert_same(got: ThresholdScan, expected: ThresholdScan) -> None:
    for field in dataclasses.fields(ThresholdScan):
        a, b = getattr(got, field.name), getattr(expected, field.name)
        assert a.dtype == b.dtype, field.name
        np.testing.assert_array_equal(a, b, err_msg=field.name)  # bit for bit (NaN = NaN)


def _sample(rng: np.random.Generator, n: int, decimals: int | None) -> ScoreSample:
    score = rng.normal(3.0, 1.0, n)
    if decimals is not None:  # many ties
        score = np.round(score, decimals)
    return ScoreSample(score=score, yield_=rng.normal(1.0, 0.5, n))


@pytest.mark.parametrize("decimals", [None, 2, 0])
@pytest.mark.parametrize("reweighted", [False, True])
def test_both_directions_equal_scanning_minus_x(decimals: int | None, reweighted: bool) -> None:
    rng = np.random.default_rng(11 + (decimals or 0))
    sm = _sample(rng, 5000, decimals)
    if reweighted:  # LIN and QUAD weights of the SM events: one sort for all three
        lin = ScoreSample(score=sm.score, yield_=rng.normal(0.1, 1.0, sm.score.size))
        quad = ScoreSample(score=sm.score, yield_=rng.exponential(1.0, sm.score.size))
    else:
        lin, quad = _sample(rng, 700, decimals), _sample(rng, 900, decimals)
    up, down = scan_both_directions(sm, lin, quad)
    _assert_same(up, scan_thresholds(sm, lin, quad))
    _assert_same(down, scan_thresholds(_negated(sm), _negated(lin), _negated(quad)))


@pytest.mark.parametrize("zero", [0.0, -0.0])
def test_zeros_take_the_plain_way_with_the_same_result(zero: float) -> None:
    rng = np.random.default_rng(5)
    sm, lin, quad = (_sample(rng, n, 1) for n in (800, 300, 300))
    sm.score[[3, 40, 41]] = zero
    lin.score[7] = -zero
    up, down = scan_both_directions(sm, lin, quad)
    _assert_same(up, scan_thresholds(sm, lin, quad))
    _assert_same(down, scan_thresholds(_negated(sm), _negated(lin), _negated(quad)))


def test_mirrored_order_is_numpys_stable_argsort_of_minus_x() -> None:
    rng = np.random.default_rng(2)
    for n in (0, 1, 2, 17, 4000):
        x = np.round(rng.normal(size=n), 1)
        order = np.argsort(x, kind="stable")
        got = mirrored_order(order.astype(np.int64), x[order])
        np.testing.assert_array_equal(got, np.argsort(-x, kind="stable"))
