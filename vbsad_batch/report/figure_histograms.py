"""Binning and normalisation of the report's histograms, and drawing them with mplhep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import mplhep
import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "N_BINS",
    "bin_edges",
    "binned_sums",
    "fill",
    "signed_shape",
    "step",
    "unit_area",
    "weighted_bin_edges",
    "weighted_quantiles",
]

N_BINS = 40
_QUANTILE_RANGE = (0.005, 0.995)


def _edges(low: float, high: float, log: bool, n: int, pooled: np.ndarray) -> np.ndarray:
    """n bins from low to high (log-spaced if `log`); when high <= low, from the pooled
    values' minimum to maximum, padded if they are all equal."""
    if not high > low:
        low, high = float(pooled.min()), float(pooled.max())
    if not high > low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
        log = log and low > 0
    if log:
        return np.geomspace(low, high, n + 1)
    return np.linspace(low, high, n + 1)


def bin_edges(values: Sequence[np.ndarray], log: bool, n: int = N_BINS) -> np.ndarray:
    """Bin edges spanning the 0.5%-99.5% quantiles of the pooled values (log-spaced if `log`
    and all are positive)."""
    pooled = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    if log:
        pooled = pooled[pooled > 0]
    if pooled.size == 0:
        return np.linspace(0.0, 1.0, n + 1)
    low, high = np.quantile(pooled, _QUANTILE_RANGE)
    return _edges(float(low), float(high), log, n, pooled)


def weighted_quantiles(
    values: np.ndarray, weights: np.ndarray, quantiles: Sequence[float]
) -> np.ndarray:
    """Quantiles of `values` weighted by |weights|: the smallest value at which the
    cumulative |weight| reaches each fraction of the total."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(np.abs(weights[order]))
    targets = np.asarray(quantiles, dtype=np.float64) * cumulative[-1]
    index = np.minimum(np.searchsorted(cumulative, targets, side="left"), values.size - 1)
    return np.asarray(values[order][index], dtype=np.float64)


def weighted_bin_edges(
    samples: Sequence[tuple[np.ndarray, np.ndarray]], log: bool, n: int = N_BINS
) -> np.ndarray:
    """Bin edges covering the central 99% of every sample's weight: from the lowest of the
    samples' 0.5% |w|-weighted quantiles to the highest of their 99.5% ones (log-spaced if
    `log`, over the positive values). A sample whose weight sits in a tail of the others (a
    QUAD term at high energy) stays in range."""
    lows, highs, extremes = [], [], []
    for v, w in samples:
        ok = np.isfinite(v) & np.isfinite(w) & (w != 0)
        if log:
            ok &= v > 0
        if ok.any():
            low, high = weighted_quantiles(v[ok], w[ok], _QUANTILE_RANGE)
            lows.append(float(low))
            highs.append(float(high))
            extremes += [float(v[ok].min()), float(v[ok].max())]  # not a pooled copy of them all
    if not extremes:
        return np.linspace(0.0, 1.0, n + 1)
    return _edges(min(lows), max(highs), log, n, np.asarray(extremes))


def binned_sums(values: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The sum of `weights` per bin of `edges` (increasing), with `np.histogram`'s bins:
    [edges[i], edges[i+1]), the last one closed; values outside (or NaN) are left out.

    `np.histogram` with an array of edges sorts the values to find their bins; here each
    value's bin is a binary search in the few edges and the sums one `bincount`, ~2-3 times
    faster on the report's columns of millions of events. The sums agree with `np.histogram`'s
    to rounding (they are added in another order)."""
    n = edges.size - 1
    index = np.searchsorted(edges, values, side="right") - 1
    index[values == edges[-1]] = n - 1  # the last bin includes its upper edge
    inside = (index >= 0) & (index < n)
    return np.bincount(index[inside], weights=weights[inside], minlength=n).astype(np.float64)


def unit_area(values: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Weighted histogram divided by the sum of the weights in range and the bin widths."""
    counts = binned_sums(values, weights, edges)
    total = counts.sum()
    return counts / (total * np.diff(edges)) if total > 0 else counts * 0.0


def signed_shape(
    values: np.ndarray, weights: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, str]:
    """A signed (LIN) histogram divided by |sum of weights| and the bin widths, and the label
    of that normalisation. When the weights nearly cancel (|sum| < 5% of sum |w|), it is
    divided by sum |w| instead, as a shape of unit absolute area."""
    counts = binned_sums(values, weights, edges)
    total = float(counts.sum())
    absolute = float(binned_sums(values, np.abs(weights), edges).sum())
    if absolute == 0:
        return counts * 0.0, "empty"
    if abs(total) >= 0.05 * absolute:
        sign = "+1" if total > 0 else "-1"
        return counts / (abs(total) * np.diff(edges)), f"/ |Σw|, area {sign}"
    return counts / (absolute * np.diff(edges)), "/ Σ|w| (Σw ≈ 0)"


def step(ax: Axes, density: np.ndarray, edges: np.ndarray, **kwargs: Any) -> None:
    """A histogram as a step line."""
    mplhep.histplot(density, edges, ax=ax, histtype="step", **kwargs)


def fill(ax: Axes, density: np.ndarray, edges: np.ndarray, **kwargs: Any) -> None:
    """A histogram filled, half transparent."""
    mplhep.histplot(density, edges, ax=ax, histtype="fill", alpha=0.5, **kwargs)
