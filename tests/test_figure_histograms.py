"""The report's weighted histograms against numpy's own (`np.histogram`), an independent
implementation of the same bins."""

from __future__ import annotations

import numpy as np
import pytest

from vbsad_batch.report.figure_histograms import binned_sums, signed_shape, unit_area


@pytest.mark.parametrize("log", [False, True])
def test_binned_sums_are_numpys_weighted_histogram(log: bool) -> None:
    rng = np.random.default_rng(7)
    values = rng.exponential(400.0, 200_000)
    weights = rng.normal(1.0, 2.0, values.size)  # signed, as LIN weights are
    edges = np.geomspace(30.0, 2500.0, 41) if log else np.linspace(30.0, 2500.0, 41)
    # values exactly on edges (the last edge belongs to the last bin), outside, and repeated
    values[:8] = [edges[0], edges[1], edges[17], edges[-2], edges[-1], edges[-1], 1.0, 1e6]
    expected, _ = np.histogram(values, bins=edges, weights=weights)
    got = binned_sums(values, weights, edges)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.abs(weights).sum())
    # unweighted: equal counts, exactly
    ones = np.ones_like(values)
    np.testing.assert_array_equal(binned_sums(values, ones, edges), np.histogram(values, edges)[0])


def test_values_outside_or_not_a_number_are_left_out() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    values = np.array([-0.5, 0.0, 0.5, 1.0, 2.0, 2.5, np.nan])
    weights = np.array([100.0, 1.0, 2.0, 4.0, 8.0, 100.0, 100.0])
    np.testing.assert_array_equal(binned_sums(values, weights, edges), [3.0, 12.0])


def test_unit_area_and_signed_shape_normalise_numpys_histogram() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 1.0, 50_000)
    weights = rng.normal(0.2, 1.0, values.size)
    edges = np.linspace(-2.0, 2.0, 21)
    counts, _ = np.histogram(values, bins=edges, weights=np.abs(weights))
    np.testing.assert_allclose(
        unit_area(values, np.abs(weights), edges),
        counts / (counts.sum() * np.diff(edges)),
        rtol=1e-12,
    )
    signed, _ = np.histogram(values, bins=edges, weights=weights)
    shape, how = signed_shape(values, weights, edges)
    assert how == "/ |Σw|, area +1"
    np.testing.assert_allclose(shape, signed / (abs(signed.sum()) * np.diff(edges)), rtol=1e-10)
