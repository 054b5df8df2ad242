"""Both directions of the baseline's scan from one sort, against sorting -x again
(`scan_thresholds` of the negated samples) and numpy's stable argsort of -x."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vbsad_batch.scan.baseline import best_single_cut, sm_orders
from vbsad_batch.scan.both_directions import mirrored_order, scan_both_directions
from vbsad_batch.scan.statistics import (
    Admissibility,
    ScoreSample,
    ThresholdScan,
    scan_thresholds,
    stable_order,
)


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


@pytest.mark.parametrize("decimals", [None, 1])
@pytest.mark.parametrize("reweighted", [False, True])
def test_a_known_sm_order_gives_the_same_scans(decimals: int | None, reweighted: bool) -> None:
    """The SM sort kept from another operator's scan: the scans of sorting it again."""
    rng = np.random.default_rng(23 + (decimals or 0))
    sm = _sample(rng, 4000, decimals)
    if reweighted:
        lin = ScoreSample(score=sm.score, yield_=rng.normal(0.1, 1.0, sm.score.size))
        quad = ScoreSample(score=sm.score, yield_=rng.exponential(1.0, sm.score.size))
    else:
        lin, quad = _sample(rng, 600, decimals), _sample(rng, 500, decimals)
    up, down = scan_both_directions(sm, lin, quad, sm_order=stable_order(sm.score))
    _assert_same(up, scan_thresholds(sm, lin, quad))
    _assert_same(down, scan_thresholds(_negated(sm), _negated(lin), _negated(quad)))


def test_an_sm_order_of_other_events_is_refused() -> None:
    rng = np.random.default_rng(3)
    sm, lin, quad = (_sample(rng, n, None) for n in (800, 300, 300))
    with pytest.raises(ValueError, match="a sort order of 799 events for 800 SM events"):
        scan_both_directions(sm, lin, quad, sm_order=stable_order(sm.score[:-1]))


def test_the_baseline_with_kept_sm_orders_chooses_and_quotes_the_same() -> None:
    """`best_single_cut` given `sm_orders` of the samples it chooses on: the same choices and
    limits, for three operators sharing one SM sample (as a rank's work items do)."""
    rng = np.random.default_rng(8)

    def observables(sm_values: dict[str, np.ndarray], n_eft: int, shift: float) -> dict:
        out = {}
        for name, values in sm_values.items():
            sm = ScoreSample(score=values, yield_=np.full(values.size, 0.5))
            eft = [np.round(rng.normal(3.0 + shift, 1.0, n_eft), 2) for _ in range(2)]
            lin = ScoreSample(score=eft[0], yield_=rng.normal(0.2, 0.1, n_eft))
            quad = ScoreSample(score=eft[1], yield_=rng.exponential(0.3, n_eft))
            out[name] = (sm, lin, quad)
        return out

    validation_sm = {name: np.round(rng.normal(2.0, 1.0, 3000), 2) for name in ("a", "b")}
    test_sm = {name: np.round(rng.normal(2.0, 1.0, 3000), 2) for name in ("a", "b")}
    admissible = Admissibility(min_sm_mc_events=10, min_sm_yield=1.0)
    kept = None
    for shift in (0.5, 1.0, 1.5):  # three operators
        chosen_on = observables(validation_sm, 400, shift)
        quoted = observables(test_sm, 400, shift)
        kept = sm_orders(chosen_on) if kept is None else kept
        plain = best_single_cut(quoted, chosen_on, significance=3.0, admissible=admissible)
        given = best_single_cut(
            quoted, chosen_on, significance=3.0, admissible=admissible, orders=kept
        )
        assert given == plain
        assert any(choice is not None and choice.point is not None for choice in plain)


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
