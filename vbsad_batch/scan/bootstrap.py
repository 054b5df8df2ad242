"""Bootstrap replicas of the Monte Carlo samples: the statistical uncertainty of the limits
(numpy). Conventions as in `vbsad_batch.scan.statistics`; yields in events.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vbsad_batch.scan.statistics import (
    Admissibility,
    FloatArray,
    IntArray,
    ScoreSample,
    Statistic,
    ThresholdScan,
    _layout,
    _scan_with,
    _solve,
    check_significance,
    quote_limit,
)

__all__ = ["bootstrap_limits"]


def _replica_rng(seed: int, replica: int) -> np.random.Generator:
    """The generator of one replica: a function of (seed, replica index) only."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(replica)]))


def bootstrap_limits(
    sm: ScoreSample,
    lin: ScoreSample,
    quad: ScoreSample,
    *,
    replicas: int,
    seed: int,
    significance: float,
    admissible: Admissibility,
    replica_indices: Sequence[int] | None = None,
    statistic: Statistic = "proxy",
    regions_from: tuple[ScoreSample, ScoreSample, ScoreSample] | None = None,
) -> FloatArray:
    """Limits (c_minus, c_plus) on bootstrap replicas of the Monte Carlo samples.

    With `regions_from` (SM, LIN, QUAD of other events, e.g. the validation split), each
    replica chooses its regions on a replica of those events and quotes them on the replica of
    `sm`, `lin`, `quad` (`quote_limit`): the whole procedure is resampled.

    Replica i gives every event a Poisson(1) weight (a multiplicity: the event counts that many
    times, its yield is multiplied by it and it adds that many SM Monte Carlo events for
    admissibility) drawn from a generator seeded by (seed, i) alone, so any subset of replicas,
    computed anywhere, gives the same numbers as the full run. Events of the three samples are
    resampled independently, unless all three carry `event_id`, in which case equal ids share one
    weight. The spread of the replicas estimates the statistical uncertainty of the limits due
    to the finite Monte Carlo samples.

    Returns:
        Array (number of replicas computed, 2): c_minus, c_plus per replica in the order of
        `replica_indices` (default range(replicas)); NaN where not reached.
    """
    if replicas < 0:
        raise ValueError(f"replicas must be >= 0, got {replicas}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    indices = (
        list(range(replicas)) if replica_indices is None else [int(i) for i in replica_indices]
    )
    for i in indices:
        if not 0 <= i < replicas:
            raise ValueError(f"replica index {i} is outside [0, {replicas})")
    check_significance(significance)
    quoted = _Resampled(sm, lin, quad)
    choice = None if regions_from is None else _Resampled(*regions_from)
    out = np.full((len(indices), 2), np.nan)
    for row, replica in enumerate(indices):
        rng = _replica_rng(seed, replica)
        scan = quoted.replica(rng)
        if choice is None:
            limit = _solve(scan, significance, admissible, statistic)
        else:  # drawn after the quoted events': the quoted replicas are those of plain mode
            chosen = _solve(choice.replica(rng), significance, admissible, statistic)
            limit = quote_limit(scan, chosen, admissible)
        out[row, 0] = np.nan if limit.c_minus is None else limit.c_minus
        out[row, 1] = np.nan if limit.c_plus is None else limit.c_plus
    return out


class _Resampled:
    """SM, LIN and QUAD events sorted once, to scan Poisson-weighted replicas of them."""

    def __init__(self, sm: ScoreSample, lin: ScoreSample, quad: ScoreSample) -> None:
        self._samples = (sm, lin, quad)
        self._layout = _layout(sm, lin, quad)
        self._shared: tuple[int, list[IntArray]] | None = None
        if all(s.event_id is not None for s in self._samples):
            ids = [np.asarray(s.event_id) for s in self._samples]
            keys, inverse = np.unique(np.concatenate(ids), return_inverse=True)
            bounds = np.cumsum([0, *(len(s) for s in self._samples)])
            self._shared = (
                int(keys.size),
                [inverse[bounds[k] : bounds[k + 1]].astype(np.int64) for k in range(3)],
            )

    def replica(self, rng: np.random.Generator) -> ThresholdScan:
        """The scan of one replica: every event weighted by a Poisson(1) multiplicity drawn
        from `rng` (one draw per event, or per event id when all three samples carry ids)."""
        sm, lin, quad = self._samples
        if self._shared is None:
            weights = [rng.poisson(1.0, len(s)).astype(np.int64) for s in self._samples]
        else:
            drawn = rng.poisson(1.0, self._shared[0]).astype(np.int64)
            weights = [drawn[m] for m in self._shared[1]]
        return _scan_with(
            self._layout,
            (sm.yield_ * weights[0], lin.yield_ * weights[1], quad.yield_ * weights[2]),
            weights[0],
        )
