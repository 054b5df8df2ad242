"""Sensitivity scans (vbsad_batch.scan.statistics): hand-computed toys and brute-force cross-checks.

Brute-force references recompute everything along an independent path: region sums with boolean
masks, significances with the plain formulas on a fine grid of c, roots with scipy's brentq.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import optimize, stats

from vbsad_batch.scan.asimov import asimov_signals
from vbsad_batch.scan.bootstrap import bootstrap_limits
from vbsad_batch.scan.contours import PairScan, contour_2d, pair_region, scan_pair, sigma_2d
from vbsad_batch.scan.likelihood import interval_95cl
from vbsad_batch.scan.sm_column import SMColumn
from vbsad_batch.scan.statistics import (
    Admissibility,
    ScoreSample,
    ThresholdScan,
    asimov_z,
    quote_limit,
    scan_thresholds,
    sigma_curve,
    solve_asimov,
    solve_proxy,
    threshold_coefficients,
)

LOOSE = Admissibility(min_sm_mc_events=1, min_sm_yield=0.0)


def one_region(s: float, lin: float, quad: float, n_mc: int = 100) -> ThresholdScan:
    """A scan with a single region of the given yields."""
    return ThresholdScan(
        threshold=np.array([0.5]),
        sm_yield=np.array([s]),
        lin_yield=np.array([lin]),
        quad_yield=np.array([quad]),
        sm_mc_events=np.array([n_mc], dtype=np.int64),
        sm_efficiency=np.array([1.0]),
    )


# --- the threshold scan --------------------------------------------------------------------------


def test_scan_thresholds_hand_computed() -> None:
    sm = ScoreSample(np.array([0.4, 0.1, 0.3, 0.2]), np.array([1.0, 4.0, 2.0, 3.0]))
    lin = ScoreSample(np.array([0.15, 0.3, 0.5]), np.array([-1.0, 2.0, 3.0]))
    quad = ScoreSample(np.array([0.1, 0.2, 0.3, 0.4, 0.4]), np.array([1.0, 1.0, 1.0, 1.0, 0.5]))
    scan = scan_thresholds(sm, lin, quad)
    np.testing.assert_array_equal(scan.threshold, [0.1, 0.15, 0.2, 0.3, 0.4, 0.5])
    np.testing.assert_array_equal(scan.sm_yield, [10.0, 6.0, 6.0, 3.0, 1.0, 0.0])
    np.testing.assert_array_equal(scan.lin_yield, [4.0, 4.0, 5.0, 5.0, 3.0, 3.0])
    np.testing.assert_array_equal(scan.quad_yield, [4.5, 3.5, 3.5, 2.5, 1.5, 0.0])
    np.testing.assert_array_equal(scan.sm_mc_events, [4, 3, 3, 2, 1, 0])
    np.testing.assert_allclose(scan.sm_efficiency, [1.0, 0.6, 0.6, 0.3, 0.1, 0.0])


def test_scan_thresholds_shared_scores_and_ties() -> None:
    score = np.array([0.2, 0.7, 0.2, 0.9, 0.7, 0.7])
    sm = ScoreSample(score, np.ones(6))
    lin = ScoreSample(score.copy(), np.array([1.0, -2.0, 0.5, 3.0, -1.0, 0.0]))
    quad = ScoreSample(score, np.full(6, 0.25))
    scan = scan_thresholds(sm, lin, quad)
    np.testing.assert_array_equal(scan.threshold, [0.2, 0.7, 0.9])
    np.testing.assert_array_equal(scan.sm_mc_events, [6, 4, 1])
    np.testing.assert_allclose(scan.lin_yield, [1.5, 0.0, 3.0])
    np.testing.assert_allclose(scan.quad_yield, [1.5, 1.0, 0.25])


@pytest.mark.parametrize(
    ("score", "yields", "message"),
    [
        ([0.1, np.nan], [1.0, 1.0], "NaN"),
        ([0.1, 0.2], [1.0], "events"),
        ([[0.1]], [[1.0]], "1-D"),
    ],
)
def test_score_sample_validation(score: object, yields: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScoreSample(np.asarray(score, dtype=float), np.asarray(yields, dtype=float))


def test_admissibility_validation() -> None:
    with pytest.raises(ValueError, match="min_sm_mc_events"):
        Admissibility(-1, 1.0)
    with pytest.raises(ValueError, match="min_sm_yield"):
        Admissibility(1, -0.5)


# --- the proxy: exact values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "lin", "quad", "expected_minus", "expected_plus"),
    [
        # Q = 0: |c L| / sqrt(S) = 3 -> c = -+3 * 2 / 1
        (4.0, 1.0, 0.0, -6.0, 6.0),
        # L = 0: c^2 = 3 * sqrt(4) -> c = -+sqrt(6)
        (4.0, 0.0, 1.0, -math.sqrt(6.0), math.sqrt(6.0)),
        # negative LIN: c^2 - 2c = 3 -> c = 3, -1 (c^2 - 2c = -3 has no real root)
        (1.0, -2.0, 1.0, -1.0, 3.0),
        # negative QUAD: -c^2 + 4c = 3 -> 1, 3;  -c^2 + 4c = -3 -> 2 -+ sqrt(7)
        (1.0, 4.0, -1.0, 2.0 - math.sqrt(7.0), 1.0),
        # negative LIN, Q = 0
        (9.0, -3.0, 0.0, -3.0, 3.0),
    ],
)
def test_proxy_hand_computed(
    s: float, lin: float, quad: float, expected_minus: float, expected_plus: float
) -> None:
    limit = solve_proxy(one_region(s, lin, quad), 3.0, LOOSE)
    assert limit.c_minus == pytest.approx(expected_minus, rel=1e-15)
    assert limit.c_plus == pytest.approx(expected_plus, rel=1e-15)
    assert limit.threshold_minus == limit.threshold_plus == 0.5
    assert limit.statistic == "proxy"
    assert limit.plus is not None
    assert (limit.plus.sm_yield, limit.plus.lin_yield, limit.plus.quad_yield) == (s, lin, quad)


def test_proxy_no_solution() -> None:
    limit = solve_proxy(one_region(4.0, 0.0, 0.0), 3.0, LOOSE)
    assert limit.c_minus is None
    assert limit.c_plus is None
    assert limit.threshold_plus is None


def test_proxy_stable_quadratic_tiny_quad() -> None:
    # 1e-12 c^2 + c - 3 = 0: c = k - Q k^2 + 2 Q^2 k^3 - ... (the textbook formula loses ~4 digits)
    quad, k = 1e-12, 3.0
    limit = solve_proxy(one_region(1.0, 1.0, quad), 3.0, LOOSE)
    series = k - quad * k**2 + 2 * quad**2 * k**3
    assert limit.c_plus == pytest.approx(series, rel=1e-15)
    assert limit.c_minus == pytest.approx(-k - quad * k**2 - 2 * quad**2 * k**3, rel=1e-15)


def test_proxy_skips_inadmissible_and_empty_regions() -> None:
    # Three regions: the last has S = 0 (infinitely significant by the formula) and must be
    # skipped; the middle one has too few SM MC events for min_sm_mc_events = 5.
    scan = ThresholdScan(
        threshold=np.array([0.1, 0.5, 0.9]),
        sm_yield=np.array([100.0, 1.0, 0.0]),
        lin_yield=np.array([10.0, 10.0, 10.0]),
        quad_yield=np.array([0.0, 0.0, 0.0]),
        sm_mc_events=np.array([50, 3, 0], dtype=np.int64),
        sm_efficiency=np.array([1.0, 0.01, 0.0]),
    )
    strict = Admissibility(min_sm_mc_events=5, min_sm_yield=0.0)
    limit = solve_proxy(scan, 3.0, strict)
    assert limit.c_plus == pytest.approx(3.0)  # 3 * sqrt(100) / 10, region 0
    assert limit.threshold_plus == 0.1
    limit = solve_proxy(scan, 3.0, Admissibility(min_sm_mc_events=0, min_sm_yield=0.0))
    assert limit.c_plus == pytest.approx(0.3)  # region 1; region 2 (S = 0) never counts
    limit = solve_proxy(scan, 3.0, Admissibility(min_sm_mc_events=0, min_sm_yield=2.0))
    assert limit.c_plus == pytest.approx(3.0)  # region 1 has S = 1 < 2
    none = solve_proxy(scan, 3.0, Admissibility(min_sm_mc_events=1000, min_sm_yield=0.0))
    assert none.c_minus is None
    assert none.c_plus is None


def test_sigma_curve_at_the_limit_is_the_significance() -> None:
    scan = one_region(2.0, -1.5, 0.7)
    limit = solve_proxy(scan, 3.0, LOOSE)
    assert limit.c_minus is not None
    assert limit.c_plus is not None
    values = sigma_curve(scan, 0, np.array([limit.c_minus, 0.0, limit.c_plus]))
    np.testing.assert_allclose(values, [3.0, 0.0, 3.0], rtol=1e-14)
    asimov = solve_asimov(scan, 3.0, LOOSE)
    assert asimov.c_minus is not None
    assert asimov.c_plus is not None
    z = sigma_curve(scan, 0, np.array([asimov.c_minus, asimov.c_plus]), statistic="asimov")
    np.testing.assert_allclose(z, [3.0, 3.0], rtol=1e-12)


# --- brute force ---------------------------------------------------------------------------------


def random_toy(rng: np.random.Generator, n: int) -> tuple[ScoreSample, ScoreSample, ScoreSample]:
    """SM falling with the score; LIN of both signs, QUAD rising; ties in the scores."""
    sm_score = np.round(rng.uniform(0, 1, n), 2)
    sm = ScoreSample(sm_score, rng.exponential(1.0, n) * (1.2 - sm_score))
    lin_score = np.round(rng.uniform(0, 1, n), 2)
    lin = ScoreSample(lin_score, rng.normal(0.2 * lin_score - 0.05, 0.3, n))
    quad_score = np.round(rng.uniform(0, 1, n), 2)
    quad = ScoreSample(quad_score, rng.exponential(0.05, n) * (0.2 + quad_score) ** 2)
    return sm, lin, quad


def brute_regions(
    sm: ScoreSample, lin: ScoreSample, quad: ScoreSample
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    thresholds = np.array(sorted(set(sm.score) | set(lin.score) | set(quad.score)))
    s = np.array([sm.yield_[sm.score >= t].sum() for t in thresholds])
    lin_y = np.array([lin.yield_[lin.score >= t].sum() for t in thresholds])
    quad_y = np.array([quad.yield_[quad.score >= t].sum() for t in thresholds])
    n_mc = np.array([np.count_nonzero(sm.score >= t) for t in thresholds])
    return thresholds, s, lin_y, quad_y, n_mc


def plain_asimov(signal: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The formula as written, with the s <= -b convention (limit sqrt(2 b))."""
    with np.errstate(all="ignore"):
        n = signal + b
        q0 = 2 * (n * np.log(n / b) - signal)
    q0 = np.where(n <= 0, 2 * b, q0)
    return np.sqrt(np.maximum(q0, 0.0))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("statistic", ["proxy", "asimov"])
def test_against_brute_force_grid(seed: int, statistic: str) -> None:
    rng = np.random.default_rng(seed)
    sm, lin, quad = random_toy(rng, 150)
    scan = scan_thresholds(sm, lin, quad)
    thresholds, s, lin_y, quad_y, n_mc = brute_regions(sm, lin, quad)
    np.testing.assert_array_equal(scan.threshold, thresholds)
    np.testing.assert_allclose(scan.sm_yield, s, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(scan.lin_yield, lin_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(scan.quad_yield, quad_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(scan.sm_mc_events, n_mc)

    admissible = Admissibility(min_sm_mc_events=10, min_sm_yield=2.0)
    z = 3.0
    solve = solve_proxy if statistic == "proxy" else solve_asimov
    limit = solve(scan, z, admissible)
    ok = (n_mc >= 10) & (s >= 2.0)
    step = 2e-4
    grid = np.arange(1, 150_001) * step  # |c| up to 30
    for sign, exact in ((+1, limit.c_plus), (-1, limit.c_minus)):
        c = sign * grid
        signal = c[None, :] * lin_y[ok, None] + c[None, :] ** 2 * quad_y[ok, None]
        if statistic == "proxy":
            sig = np.abs(signal) / np.sqrt(s[ok, None])
        else:
            sig = plain_asimov(signal, np.broadcast_to(s[ok, None], signal.shape))
        reached = sig >= z
        first = np.where(reached.any(axis=1), reached.argmax(axis=1), grid.size)
        best = int(first.min())
        if best == grid.size:
            assert exact is None
            continue
        assert exact is not None
        # the exact root lies within one grid step below the first grid point that reaches z
        assert abs(exact) <= grid[best] + 1e-12
        assert abs(exact) > grid[best] - step - 1e-12


def test_threshold_coefficients_nan_outside_admissible() -> None:
    rng = np.random.default_rng(7)
    scan = scan_thresholds(*random_toy(rng, 100))
    admissible = Admissibility(min_sm_mc_events=20, min_sm_yield=0.0)
    c_minus, c_plus = threshold_coefficients(scan, 3.0, admissible)
    bad = scan.sm_mc_events < 20
    assert bool(np.all(np.isnan(c_plus[bad])))
    assert bool(np.all(np.isnan(c_minus[bad])))
    good = ~bad & ~np.isnan(c_plus)
    assert bool(np.all(c_plus[good] > 0))
    assert bool(np.all(c_minus[~bad & ~np.isnan(c_minus)] < 0))
    # each per-threshold root gives sigma = 3 at its threshold
    for i in np.flatnonzero(good)[:20]:
        np.testing.assert_allclose(sigma_curve(scan, int(i), [c_plus[i]]), [3.0], rtol=1e-12)


# --- Asimov --------------------------------------------------------------------------------------


def test_asimov_z_both_signs() -> None:
    b = np.full(7, 4.0)
    s = np.array([-6.0, -4.0, -3.0, -1e-7, 0.0, 1e-7, 10.0])
    expected = plain_asimov(s, b)
    # near s = 0 the plain formula cancels; Z = |s| / sqrt(b) (1 - x / 6 + O(x^2)), x = s / b
    x = s[[3, 5]] / 4.0
    expected[[3, 5]] = np.abs(s[[3, 5]]) / 2.0 * (1 - x / 6)
    np.testing.assert_allclose(asimov_z(s, b), expected, rtol=1e-12)
    assert asimov_z(-4.0, 4.0) == pytest.approx(math.sqrt(8.0))  # no events expected
    assert math.isnan(float(asimov_z(1.0, 0.0)))
    # large b: the proxy s / sqrt(b)
    assert float(asimov_z(300.0, 1e6)) == pytest.approx(0.3, rel=1e-3)


def test_asimov_deficit_against_brentq() -> None:
    # s(c) = -5c + 0.1c^2 < 0 for 0 < c < 50: Z = 2 is reached by a deficit (r = 0.2 < 1).
    b, lin, quad, z = 10.0, -5.0, 0.1, 2.0
    limit = solve_asimov(one_region(b, lin, quad), z, LOOSE)

    def f(c: float) -> float:
        return float(plain_asimov(np.array([lin * c + quad * c * c]), np.array([b]))[0]) - z

    c_plus = optimize.brentq(f, 1e-9, 1.9, xtol=1e-15)  # s(1.9) = -9.1 > -b
    c_minus = optimize.brentq(f, -10.0, -1e-9, xtol=1e-15)
    assert limit.c_plus == pytest.approx(c_plus, rel=1e-12)
    assert limit.c_minus == pytest.approx(c_minus, rel=1e-12)


def test_asimov_deficit_unreachable() -> None:
    # b = 1, z = 3: a deficit gives at most Z = sqrt(2) < 3, so the c > 0 side must pass
    # through the deficit (-c + c^2 reaches -1/4 only) and cross on the excess branch.
    limit = solve_asimov(one_region(1.0, -1.0, 1.0), 3.0, LOOSE)
    assert limit.c_plus is not None
    assert limit.c_minus is not None
    s_needed = optimize.brentq(
        lambda s: float(plain_asimov(np.array([s]), np.array([1.0]))[0]) - 3.0, 1e-6, 100.0
    )
    # c^2 - c = s_needed
    assert limit.c_plus == pytest.approx((1 + math.sqrt(1 + 4 * s_needed)) / 2, rel=1e-12)
    assert limit.c_minus == pytest.approx((1 - math.sqrt(1 + 4 * s_needed)) / 2, rel=1e-12)


@pytest.mark.parametrize("b", [1e-6, 0.3, 4.5, 4.500001, 100.0, 1e9])
def test_asimov_signal_roots_exact(b: float) -> None:
    # Q = 0, L = 1: c = s directly, so the limits are the roots of Z(s, b) = 3.
    limit = solve_asimov(one_region(b, 1.0, 0.0), 3.0, LOOSE)
    assert limit.c_plus is not None
    assert float(asimov_z(limit.c_plus, b)) == pytest.approx(3.0, rel=1e-12)
    if b >= 4.5:  # a deficit reaches Z = 3 iff b >= z^2 / 2 (at b = 4.5: s = -b, no events)
        assert limit.c_minus is not None
        assert -b <= limit.c_minus < 0
        assert float(asimov_z(limit.c_minus, b)) == pytest.approx(3.0, rel=1e-9)
    else:  # s = c is a deficit for c < 0, which saturates at Z = sqrt(2 b) < 3
        assert limit.c_minus is None


# --- the binned interval -------------------------------------------------------------------------


def test_interval_single_bin_linear() -> None:
    # One bin, Q = 0: t(c) = 2 b (y - ln(1 + y)) with y = c L / b.
    b, lin_total = 50.0, 5.0
    sm = ScoreSample(np.array([0.1, 0.9]), np.array([20.0, 30.0]))
    lin = ScoreSample(np.array([0.5]), np.array([lin_total]))
    quad = ScoreSample(np.array([0.5]), np.array([0.0]))
    level = stats.chi2.ppf(0.95, 1)

    def t(y: float) -> float:
        return 2 * b * (y - math.log1p(y)) - level

    y_hi = optimize.brentq(t, 1e-9, 10.0, xtol=1e-15)
    y_lo = optimize.brentq(t, -1 + 1e-12, -1e-9, xtol=1e-15)
    low, high = interval_95cl(sm, lin, quad, bins=1)
    assert high == pytest.approx(y_hi * b / lin_total, rel=1e-10)
    assert low == pytest.approx(y_lo * b / lin_total, rel=1e-10)


def test_interval_gaussian_limit() -> None:
    # Large yields: t(c) ~ c^2 sum l_i^2 / b_i, so c = -+sqrt(3.84 / sum l_i^2 / b_i).
    edges = [0.0, 1.0, 2.0, 3.0, 4.0]
    centres = np.array([0.5, 1.5, 2.5, 3.5])
    b = np.array([4e6, 2e6, 1e6, 5e5])
    lin_y = np.array([-500.0, 300.0, 800.0, 1000.0])
    sm = ScoreSample(centres, b)
    lin = ScoreSample(centres, lin_y)
    quad = ScoreSample(centres, np.zeros(4))
    expected = math.sqrt(stats.chi2.ppf(0.95, 1) / float(np.sum(lin_y**2 / b)))
    low, high = interval_95cl(sm, lin, quad, bins=edges)
    assert high == pytest.approx(expected, rel=3e-3)
    assert low == pytest.approx(-expected, rel=3e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_interval_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sm, lin, quad = random_toy(rng, 400)
    bins = 5
    low, high = interval_95cl(sm, lin, quad, bins=bins)
    edges = np.quantile(sm.score, np.arange(1, bins) / bins)
    edges = np.unique(np.concatenate([[-np.inf], edges, [np.inf]]))

    def hist(x: ScoreSample) -> np.ndarray:
        return np.array(
            [x.yield_[(x.score >= a) & (x.score < e)].sum() for a, e in itertools.pairwise(edges)]
        )

    b, l_b, q_b = hist(sm), hist(lin), hist(quad)
    step = 1e-4
    grid = np.arange(1, 200_001) * step
    level = stats.chi2.ppf(0.95, 1)
    for sign, exact in ((+1, high), (-1, low)):
        c = sign * grid[:, None]
        mu = b + c * l_b + c * c * q_b
        with np.errstate(all="ignore"):
            t = np.where(mu > 0, 2 * (mu - b + b * np.log(b / mu)), np.inf).sum(axis=1)
        first = int(np.argmax(t >= level))
        assert t[first] >= level
        assert grid[first] - step - 1e-9 <= abs(exact) <= grid[first] + 1e-9


def test_interval_nothing_depends_on_c() -> None:
    sm = ScoreSample(np.array([0.1, 0.2]), np.array([1.0, 1.0]))
    zero = ScoreSample(np.array([0.1]), np.array([0.0]))
    assert interval_95cl(sm, zero, zero, bins=2) == (-math.inf, math.inf)


# --- bootstrap -----------------------------------------------------------------------------------


def test_bootstrap_subsets_equal_full_run() -> None:
    rng = np.random.default_rng(11)
    sm, lin, quad = random_toy(rng, 300)
    admissible = Admissibility(min_sm_mc_events=10, min_sm_yield=1.0)
    kwargs = {"replicas": 12, "seed": 42, "significance": 3.0, "admissible": admissible}
    full = bootstrap_limits(sm, lin, quad, **kwargs)  # type: ignore[arg-type]
    assert full.shape == (12, 2)
    again = bootstrap_limits(sm, lin, quad, **kwargs)  # type: ignore[arg-type]
    np.testing.assert_array_equal(full, again)
    part = bootstrap_limits(sm, lin, quad, replica_indices=[7, 0, 11], **kwargs)  # type: ignore[arg-type]
    np.testing.assert_array_equal(part, full[[7, 0, 11]])
    other = bootstrap_limits(sm, lin, quad, **{**kwargs, "seed": 43})  # type: ignore[arg-type]
    assert not np.array_equal(other, full)
    # replicas scatter around the nominal result
    nominal = solve_proxy(scan_thresholds(sm, lin, quad), 3.0, admissible)
    assert nominal.c_plus is not None
    assert np.nanmedian(full[:, 1]) == pytest.approx(nominal.c_plus, rel=0.5)
    assert bool(np.all(full[:, 1][~np.isnan(full[:, 1])] > 0))
    assert bool(np.all(full[:, 0][~np.isnan(full[:, 0])] < 0))
    with pytest.raises(ValueError, match="outside"):
        bootstrap_limits(sm, lin, quad, replica_indices=[12], **kwargs)  # type: ignore[arg-type]


def test_bootstrap_shared_event_ids() -> None:
    # One reweighted sample: SM, LIN, QUAD are the same events. With shared ids a replica equals
    # a scan of the events with yields multiplied by one common Poisson weight per event.
    rng = np.random.default_rng(5)
    n = 200
    score = rng.uniform(0, 1, n)
    ids = np.array([f"sha:{i}" for i in range(n)])
    sm = ScoreSample(score, rng.uniform(0.5, 1.5, n), ids)
    lin = ScoreSample(score, rng.normal(0.3 * score, 0.1), ids)
    quad = ScoreSample(score, rng.uniform(0, 0.2, n) * score, ids)
    admissible = Admissibility(min_sm_mc_events=5, min_sm_yield=1.0)
    got = bootstrap_limits(
        sm, lin, quad, replicas=3, seed=9, significance=3.0, admissible=admissible
    )
    for replica in range(3):
        rng_r = np.random.default_rng(np.random.SeedSequence([9, replica]))
        keys, inverse = np.unique(np.concatenate([ids, ids, ids]), return_inverse=True)
        w = rng_r.poisson(1.0, keys.size)[inverse[:n]]
        keep = w > 0
        rep = [ScoreSample(score[keep], x.yield_[keep] * w[keep]) for x in (sm, lin, quad)]
        # duplicate events by their multiplicity for the MC count
        dup = np.repeat(np.arange(n)[keep], w[keep])
        rep_sm = ScoreSample(score[dup], sm.yield_[dup])
        scan = scan_thresholds(rep_sm, rep[1], rep[2])
        limit = solve_proxy(scan, 3.0, admissible)
        np.testing.assert_allclose(got[replica], [limit.c_minus, limit.c_plus], rtol=1e-12)


def test_bootstrap_spread_shrinks_with_more_events() -> None:
    def spread(n: int) -> float:
        rng = np.random.default_rng(123)
        score = rng.uniform(0, 1, n)
        scale = 1000.0 / n  # the same expected yields whatever the number of MC events
        sm = ScoreSample(score, scale * rng.exponential(1.0, n) * (1.1 - score))
        lin = ScoreSample(score, scale * rng.normal(0.5 * score, 0.5))
        quad = ScoreSample(score, scale * rng.exponential(0.3, n) * score**2)
        limits = bootstrap_limits(
            sm,
            lin,
            quad,
            replicas=40,
            seed=1,
            significance=3.0,
            admissible=Admissibility(min_sm_mc_events=10, min_sm_yield=1.0),
        )
        assert not bool(np.any(np.isnan(limits)))
        return float(np.std(limits[:, 1]))

    small, large = spread(1_000), spread(16_000)
    assert large < small / 2.0  # ~1/sqrt(16) = 1/4 expected


# --- two operators -------------------------------------------------------------------------------


def one_pair_region(s: float, a: tuple[float, float], b: tuple[float, float], m: float) -> PairScan:
    """A pair scan with a single region of the given yields: S, (L_a, Q_a), (L_b, Q_b), M."""
    (la, qa), (lb, qb) = a, b
    one = np.array
    return PairScan(
        threshold=one([0.5]),
        sm_yield=one([s]),
        lin_a=one([la]),
        quad_a=one([qa]),
        lin_b=one([lb]),
        quad_b=one([qb]),
        mix_yield=one([m]),
        sm_mc_events=one([100], dtype=np.int64),
        sm_efficiency=one([1.0]),
    )


QUARTERS = np.array([0.0, 0.5, 1.0, 1.5]) * np.pi  # the four half-axes


def test_contour_hand_computed_without_mix() -> None:
    # sigma = |2 c_a + c_b^2| / 2: on the c_a axis c_a = +-3, on the c_b axis c_b = +-sqrt(6)
    pair = one_pair_region(4.0, (2.0, 0.0), (0.0, 1.0), 0.0)
    c_a, c_b = contour_2d(pair, 0, 3.0, QUARTERS)
    r6 = math.sqrt(6.0)
    np.testing.assert_allclose(c_a, [3.0, 0.0, -3.0, 0.0], rtol=1e-15, atol=0)
    np.testing.assert_allclose(c_b, [0.0, r6, 0.0, -r6], rtol=1e-15, atol=0)
    # the diagonal c_a = c_b = r / sqrt(2): (r^2 / 2 + sqrt(2) r) / 2 = 3, r > 0
    diag_a, diag_b = contour_2d(pair, 0, 3.0, [np.pi / 4])
    r = -math.sqrt(2.0) + math.sqrt(2.0 + 12.0)  # r^2 + 2 sqrt(2) r - 12 = 0
    np.testing.assert_allclose([diag_a[0], diag_b[0]], [r / math.sqrt(2.0)] * 2, rtol=1e-14)


@pytest.mark.parametrize("mix", [0.0, 0.9, -2.5])
def test_contour_points_have_sigma_z_and_are_first_crossings(mix: float) -> None:
    pair = one_pair_region(3.0, (-1.2, 0.4), (0.8, 0.3), mix)
    angles = 2 * np.pi * np.arange(360) / 360
    c_a, c_b = contour_2d(pair, 0, 3.0, angles)
    reached = np.isfinite(c_a)
    assert np.count_nonzero(reached) >= 300
    np.testing.assert_allclose(sigma_2d(pair, 0, c_a[reached], c_b[reached]), 3.0, rtol=1e-12)
    # inside the contour along every ray the significance stays below 3 (first crossing)
    inner = np.linspace(0.0, 0.999, 200)[:, None]
    assert np.all(sigma_2d(pair, 0, inner * c_a[reached], inner * c_b[reached]) < 3.0)
    # rays that never reach 3: still below 3 far out
    far = 1e3 * np.array([np.cos(angles[~reached]), np.sin(angles[~reached])])
    assert np.all(sigma_2d(pair, 0, far[0], far[1]) < 3.0)
    # on the axes: the 1D limits of either operator in that region; M does not matter there
    on_axes = contour_2d(pair, 0, 3.0, QUARTERS)
    for which, axis in (("a", on_axes[0]), ("b", on_axes[1])):
        limit = solve_proxy(pair.single(which), 3.0, LOOSE)  # type: ignore[arg-type]
        ends = axis[[0, 2]] if which == "a" else axis[[1, 3]]
        np.testing.assert_allclose(sorted(ends), [limit.c_minus, limit.c_plus], rtol=1e-14)
    # sigma_2d on an axis is the 1D sigma curve
    grid = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(
        sigma_2d(pair, 0, grid, 0.0), sigma_curve(pair.single("a"), 0, grid), rtol=1e-15
    )


def random_pair(rng: np.random.Generator, n: int) -> tuple[ScoreSample, ...]:
    sm, lin_a, quad_a = random_toy(rng, n)
    _, lin_b, quad_b = random_toy(rng, n)
    mix_score = np.round(rng.uniform(0, 1, n), 2)
    mix = ScoreSample(mix_score, rng.normal(0.05, 0.2, n))
    return sm, lin_a, quad_a, lin_b, quad_b, mix


def test_scan_pair_against_masks_and_single_scans() -> None:
    sm, lin_a, quad_a, lin_b, quad_b, mix = random_pair(np.random.default_rng(7), 60)
    pair = scan_pair(sm, lin_a=lin_a, quad_a=quad_a, lin_b=lin_b, quad_b=quad_b, mix=mix)
    every = (sm, lin_a, quad_a, lin_b, quad_b, mix)
    thresholds = np.array(sorted(set(np.concatenate([x.score for x in every]))))
    np.testing.assert_array_equal(pair.threshold, thresholds)
    columns = (pair.sm_yield, pair.lin_a, pair.quad_a, pair.lin_b, pair.quad_b, pair.mix_yield)
    for sample, column in zip(every, columns, strict=True):
        expected = [sample.yield_[sample.score >= t].sum() for t in thresholds]
        np.testing.assert_allclose(column, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(
        pair.sm_mc_events, [np.count_nonzero(sm.score >= t) for t in thresholds]
    )
    # the pair's single scans give the limits of the operators' own scans
    adm = Admissibility(min_sm_mc_events=5, min_sm_yield=0.5)
    for which, (lin, quad) in (("a", (lin_a, quad_a)), ("b", (lin_b, quad_b))):
        own = solve_proxy(scan_thresholds(sm, lin, quad), 3.0, adm)
        joint = solve_proxy(pair.single(which), 3.0, adm)  # type: ignore[arg-type]
        assert joint.c_minus == pytest.approx(own.c_minus, rel=1e-12)
        assert joint.c_plus == pytest.approx(own.c_plus, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_region_minimizes_the_worst_ratio_brute_force(seed: int) -> None:
    sm, lin_a, quad_a, lin_b, quad_b, mix = random_pair(np.random.default_rng(seed), 80)
    pair = scan_pair(sm, lin_a=lin_a, quad_a=quad_a, lin_b=lin_b, quad_b=quad_b, mix=mix)
    adm = Admissibility(min_sm_mc_events=5, min_sm_yield=0.5)
    index = pair_region(pair, 1.0, adm)
    # brute force: per region, the 1D limits of a and b with brentq-free closed forms via one
    # region each, then the worst ratio to each side's best
    per_region = []
    for i in range(len(pair)):
        ok = pair.sm_mc_events[i] >= 5 and pair.sm_yield[i] >= 0.5 and pair.sm_yield[i] > 0
        sides = []
        for lin, quad in ((pair.lin_a, pair.quad_a), (pair.lin_b, pair.quad_b)):
            limit = solve_proxy(one_region(pair.sm_yield[i], lin[i], quad[i]), 1.0, LOOSE)
            sides += [limit.c_minus, limit.c_plus] if ok else [None, None]
        per_region.append([math.inf if c is None else abs(c) for c in sides])
    table = np.array(per_region)
    best = table.min(axis=0)
    used = np.isfinite(best)
    assert used.any()
    worst = (table[:, used] / best[used]).max(axis=1)
    if not np.isfinite(worst.min()):
        assert index is None
    else:
        assert index == int(np.argmin(worst))


def _brute_proxy_side(
    thresholds: np.ndarray,
    s: np.ndarray,
    lin_y: np.ndarray,
    quad_y: np.ndarray,
    n_mc: np.ndarray,
    *,
    side: int,
) -> tuple[float | None, float | None]:
    """(c, threshold) of the first crossing of sigma = 3 on one side (0: c < 0, 1: c > 0) with
    the smallest |c| over the admissible thresholds (10 SM MC events, S >= 1), by brentq-free
    closed forms written out here."""
    best: tuple[float, float] | None = None
    for t, ss, ll, qq, nn in zip(thresholds, s, lin_y, quad_y, n_mc, strict=True):
        if nn < 10 or ss < 1.0:
            continue
        roots = []
        for target in (3 * math.sqrt(ss), -3 * math.sqrt(ss)):
            if qq == 0:
                if ll != 0:
                    roots.append(target / ll)
                continue
            disc = ll * ll + 4 * qq * target
            if disc >= 0:
                roots += [(-ll + math.sqrt(disc)) / (2 * qq), (-ll - math.sqrt(disc)) / (2 * qq)]
        side_roots = [r for r in roots if (r < 0 if side == 0 else r > 0)]
        if side_roots:
            c = max(side_roots) if side == 0 else min(side_roots)
            if best is None or abs(c) < abs(best[0]):
                best = (c, t)
    return (None, None) if best is None else best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regions_chosen_on_other_events_are_quoted_with_these(seed: int) -> None:
    """`quote_limit`: the regions of the limits found on one toy (the "validation" events), the
    limits solved again with another toy's S, L, Q in exactly those regions (brute force)."""
    rng = np.random.default_rng(seed)
    validation, test = random_toy(rng, 400), random_toy(rng, 400)
    adm = Admissibility(min_sm_mc_events=10, min_sm_yield=1.0)
    chosen = solve_proxy(scan_thresholds(*validation), 3.0, adm)
    quoted = quote_limit(scan_thresholds(*test), chosen, adm)
    v_thresholds, *v_sums = brute_regions(*validation)
    t_sm, t_lin, t_quad = test
    for side, (point, chosen_point) in enumerate(
        ((quoted.minus, chosen.minus), (quoted.plus, chosen.plus))
    ):
        c_v, t_v = _brute_proxy_side(v_thresholds, *v_sums, side=side)
        assert chosen_point is not None
        assert c_v is not None
        assert chosen_point.threshold == t_v
        # the same region score >= t_v on the test events, its limit solved there by hand
        region = [np.array([t_v])]
        for sample in (t_sm, t_lin, t_quad):
            region.append(np.array([sample.yield_[sample.score >= t_v].sum()]))
        region.append(np.array([np.count_nonzero(t_sm.score >= t_v)]))
        c_t, _ = _brute_proxy_side(*region, side=side)
        if c_t is None:
            assert point is None
            continue
        assert point is not None
        assert point.threshold == t_v
        assert point.c == pytest.approx(c_t, rel=1e-9)
        assert point.sm_yield == pytest.approx(region[1][0], rel=1e-12)


def test_bootstrap_with_regions_chosen_on_other_events_resamples_both() -> None:
    rng = np.random.default_rng(4)
    validation, test = random_toy(rng, 500), random_toy(rng, 500)
    adm = Admissibility(min_sm_mc_events=10, min_sm_yield=1.0)
    kwargs = {"replicas": 8, "seed": 3, "significance": 3.0, "admissible": adm}
    plain = bootstrap_limits(*test, **kwargs)  # type: ignore[arg-type]
    chosen = bootstrap_limits(*test, **kwargs, regions_from=validation)  # type: ignore[arg-type]
    assert chosen.shape == plain.shape == (8, 2)
    assert not np.allclose(chosen, plain, equal_nan=True)
    # a replica is a function of (seed, replica) alone: any subset gives the same numbers
    part = bootstrap_limits(*test, **kwargs, regions_from=validation, replica_indices=[5, 2])  # type: ignore[arg-type]
    np.testing.assert_array_equal(part, chosen[[5, 2]])


# --- the SM side computed once per score column ---------------------------------------------------


def test_asimov_signals_against_brentq_and_independent_of_the_batch() -> None:
    rng = np.random.default_rng(11)
    b = np.concatenate([10 ** rng.uniform(-4, 7, 300), [4.5, 4.5 + 1e-9, 1.0, 1e-300]])
    s_plus, s_minus = asimov_signals(b, 3.0)
    for k in range(b.size):  # alone, each element gives the same bits as in the batch
        alone = asimov_signals(b[k : k + 1], 3.0)
        assert alone[0][0] == s_plus[k]
        assert np.array_equal(alone[1][:1], s_minus[k : k + 1], equal_nan=True)
    for k in rng.choice(b.size - 1, 40, replace=False):  # independent roots of the formula
        bk = float(b[k])

        def z_of(s: float, bk: float = bk) -> float:
            # the formula with log1p (ln(n / b) loses the digits that matter at large b)
            q0 = 2 * bk if s <= -bk else 2 * ((s + bk) * math.log1p(s / bk) - s)
            return math.sqrt(max(q0, 0.0)) - 3.0

        root = optimize.brentq(z_of, 0.0, 100 * (bk + 9), xtol=1e-300)
        assert s_plus[k] == pytest.approx(root, rel=1e-12)
        if bk > 4.5 * (1 + 1e-6):
            root = optimize.brentq(z_of, -bk, 0.0, xtol=1e-300)
            assert s_minus[k] == pytest.approx(root, rel=1e-12)
        elif bk < 4.5:
            assert math.isnan(s_minus[k])


@pytest.mark.parametrize("seed", [0, 1])
def test_sm_column_equals_scans_from_scratch_and_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sm, _, _ = random_toy(rng, 600)
    column = SMColumn(sm)
    adm = Admissibility(min_sm_mc_events=10, min_sm_yield=2.0)
    operators = []
    for k in range(3):  # separate LIN / QUAD events, with scores of their own
        _, lin, quad = random_toy(rng, 300 + 50 * k)
        operators.append((lin, quad))
    for k in range(3):  # reweighted: the SM events with other yields
        lin = ScoreSample(sm.score, rng.normal(0.1 * (k + 1) * sm.score, 0.3))
        quad = ScoreSample(sm.score, rng.exponential(0.05, sm.score.size) * (0.2 + sm.score) ** 2)
        operators.append((lin, quad))
    for lin, quad in operators:
        fresh = scan_thresholds(sm, lin, quad)
        scanned = column.scan(lin, quad)
        for name in ("threshold", "sm_yield", "lin_yield", "quad_yield", "sm_mc_events"):
            np.testing.assert_array_equal(getattr(scanned.scan, name), getattr(fresh, name))
        np.testing.assert_array_equal(scanned.scan.sm_efficiency, fresh.sm_efficiency)
        thresholds, s, lin_y, quad_y, n_mc = brute_regions(sm, lin, quad)
        np.testing.assert_array_equal(scanned.scan.threshold, thresholds)
        for got, brute in ((scanned.scan.sm_yield, s), (scanned.scan.lin_yield, lin_y)):
            np.testing.assert_allclose(got, brute, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(scanned.scan.quad_yield, quad_y, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(scanned.scan.sm_mc_events, n_mc)
        signals = column.asimov_signals(scanned, 3.0)
        shared = solve_asimov(scanned.scan, 3.0, adm, signals=signals)
        assert shared == solve_asimov(fresh, 3.0, adm)  # the same numbers, bit for bit
        assert shared.plus is not None
        assert shared.minus is not None
        for point in (shared.minus, shared.plus):  # Z = 3 there, by the formula as written
            signal = point.c * point.lin_yield + point.c**2 * point.quad_yield
            z = plain_asimov(np.array([signal]), np.array([point.sm_yield]))[0]
            assert z == pytest.approx(3.0, rel=1e-12)


def test_quote_limit_solves_only_the_chosen_regions_with_the_same_numbers() -> None:
    rng = np.random.default_rng(8)
    validation, test = random_toy(rng, 500), random_toy(rng, 500)
    adm = Admissibility(min_sm_mc_events=10, min_sm_yield=1.0)
    scan = scan_thresholds(*test)
    for statistic, solve in (("proxy", solve_proxy), ("asimov", solve_asimov)):
        chosen = solve(scan_thresholds(*validation), 3.0, adm)
        quoted = quote_limit(scan, chosen, adm)
        c_minus, c_plus = threshold_coefficients(scan, 3.0, adm, statistic=statistic)  # type: ignore[arg-type]
        for point, chosen_point, values in (
            (quoted.minus, chosen.minus, c_minus),
            (quoted.plus, chosen.plus, c_plus),
        ):
            assert chosen_point is not None
            index = int(np.searchsorted(scan.threshold, chosen_point.threshold))
            if not math.isfinite(values[index]):
                assert point is None
                continue
            assert point is not None
            assert point.threshold_index == index
            assert point.c == values[index]  # whole scan solved, then picked: the same bits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asimov_limits_solving_few_thresholds_equal_solving_all(seed: int) -> None:
    """Large scans (the Asimov limits solve only the thresholds that can hold them): the same
    c, bit for bit, and the same (lowest) threshold among equal |c|, as every threshold's
    roots followed by the smallest |c|."""
    rng = np.random.default_rng(seed)
    sm, lin, quad = random_toy(rng, 6000)
    sm = ScoreSample(np.round(rng.uniform(0, 1, 6000), 4), sm.yield_)
    # events of zero yield between the others: runs of thresholds with equal S, L, Q (ties)
    spacer = np.round(rng.uniform(0, 1, 3000), 5)
    lin = ScoreSample(np.concatenate([lin.score, spacer]), np.concatenate([lin.yield_, 0 * spacer]))
    adm = Admissibility(min_sm_mc_events=10, min_sm_yield=1.0)
    scan = scan_thresholds(sm, lin, quad)
    assert len(scan) > 5000
    column = SMColumn(sm)
    scanned = column.scan(lin, quad)
    c_all = threshold_coefficients(scan, 3.0, adm, statistic="asimov")
    for limit in (
        solve_asimov(scan, 3.0, adm),
        solve_asimov(scan, 3.0, adm, signals=column.asimov_signals(scanned, 3.0)),
    ):
        for point, values in ((limit.minus, c_all[0]), (limit.plus, c_all[1])):
            assert point is not None
            index = int(np.nanargmin(np.abs(values)))
            assert point.threshold_index == index
            assert point.c == values[index]
            ties = np.flatnonzero(np.abs(values) == abs(point.c))
            assert ties[0] == index


@pytest.mark.parametrize("statistic", ["proxy", "asimov"])
def test_limits_over_admissible_thresholds_with_gaps_equal_solving_all(statistic: str) -> None:
    """Negative SM yields make S(t) go up and down: the admissible thresholds are not one run."""
    rng = np.random.default_rng(21)
    sm, lin, quad = random_toy(rng, 8000)
    sm = ScoreSample(np.round(rng.uniform(0, 1, 8000), 4), sm.yield_ - 0.7)
    adm = Admissibility(min_sm_mc_events=10, min_sm_yield=5.0)
    scan = scan_thresholds(sm, lin, quad)
    mask = scan.admissible(adm)
    runs = np.count_nonzero(np.diff(mask.astype(np.int8)) == 1) + int(mask[0])
    assert runs > 1
    solve = solve_proxy if statistic == "proxy" else solve_asimov
    limit = solve(scan, 3.0, adm)
    c_all = threshold_coefficients(scan, 3.0, adm, statistic=statistic)  # type: ignore[arg-type]
    for point, values in ((limit.minus, c_all[0]), (limit.plus, c_all[1])):
        if not np.isfinite(values).any():
            assert point is None
            continue
        assert point is not None
        index = int(np.nanargmin(np.abs(values)))
        assert (point.threshold_index, point.c) == (index, values[index])
