"""Benchmark: the exact threshold scan of vbsad_batch.scan.statistics versus the reference
paper's method.

A seeded synthetic reweighted sample (numpy) of N events is made once: an anomaly score per
event (float32 values, so there are ties, as from a model), the SM yield (events at 350 fb^-1,
~925 in all) and, for each of 7 operators, the LIN (both signs) and QUAD yields, with EFT
events concentrated at high scores. Then, for each operator, in one run:

- exact: `scan_thresholds` (every distinct score as threshold, sort + cumulative sums) and
  `solve_proxy` (exact roots of sigma(c) = |cL + c^2 Q| / sqrt(S) = 3);
- paper: a stepped threshold grid (`--steps` thresholds between the lowest and highest score),
  a golden-section search over the threshold around the best grid point, and at every threshold
  visited a coarse-to-fine scan in c (101 points over [0, 100] per side, refined 4 times by
  101 points within the first bracket reaching sigma = 3; its value is the bracket's upper end).
  Regions are summed with boolean masks.

Both use the same admissibility (>= 10 SM MC events and >= 1 SM event in the region). Printed:
wall time of each (generation excluded), the ratio, and per operator c- and c+ of both; the
exact scan must be at least as sensitive (|c| smaller or equal) on every operator and side.

    python benchmarks/scan.py                    # 10 million events
    python benchmarks/scan.py --events 1000000
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable

import numpy as np

from vbsad_batch.scan.statistics import Admissibility, ScoreSample, scan_thresholds, solve_proxy

OPERATORS = ("cW", "cHW", "cHq1", "cqq1", "cqq11", "cqq3", "cqq31")
SM_TOTAL_YIELD = 2.64e-3 * 350_000.0  # pb x pb^-1
Z = 3.0
ADMISSIBLE = Admissibility(min_sm_mc_events=10, min_sm_yield=1.0)
C_MAX = 100.0


def generate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, ...]]]:
    """(score, SM yields, {operator: (LIN yields, QUAD yields)})."""
    rng = np.random.default_rng(seed)
    hardness = rng.exponential(1.0, n)  # a stand-in for the energy scale of the event
    score = (hardness + rng.normal(0.0, 0.3, n)).astype(np.float32).astype(np.float64)
    sm = rng.exponential(1.0, n)
    sm *= SM_TOTAL_YIELD / sm.sum()
    eft: dict[str, tuple[np.ndarray, ...]] = {}
    for k, op in enumerate(OPERATORS):
        a = 0.05 * (k + 1)
        lin = sm * a * (hardness - 0.8 + 0.2 * k) * rng.normal(1.0, 0.5, n)
        quad = sm * (0.02 + 0.01 * k) * hardness**2 * rng.exponential(1.0, n)
        eft[op] = (lin, quad)
    return score, sm, eft


# --- the paper's method --------------------------------------------------------------------------


def coarse_to_fine(s: float, lin: float, quad: float, sign: float) -> float:
    """|c| on one side at which sigma first reaches Z (upper end of the final bracket)."""
    k = Z * math.sqrt(s)
    lo, hi = 0.0, C_MAX
    for _ in range(5):
        c = sign * np.linspace(lo, hi, 101)
        reached = np.abs(c * lin + c * c * quad) >= k
        if not reached.any():
            return math.inf
        i = int(np.argmax(reached))
        if i == 0:
            return lo
        lo, hi = abs(float(c[i - 1])), abs(float(c[i]))
    return hi


def paper_limits(score: np.ndarray, sm: np.ndarray, lin: np.ndarray, quad: np.ndarray, steps: int):
    cache: dict[float, tuple[float, float]] = {}

    def limits_at(t: float) -> tuple[float, float]:
        if t not in cache:
            region = score >= t
            n_mc = int(np.count_nonzero(region))
            s = float(np.sum(sm, where=region))
            if n_mc < ADMISSIBLE.min_sm_mc_events or s < ADMISSIBLE.min_sm_yield or s <= 0:
                cache[t] = (math.inf, math.inf)
            else:
                lin_r = float(np.sum(lin, where=region))
                quad_r = float(np.sum(quad, where=region))
                cache[t] = (
                    coarse_to_fine(s, lin_r, quad_r, -1.0),
                    coarse_to_fine(s, lin_r, quad_r, +1.0),
                )
        return cache[t]

    grid = np.linspace(float(score.min()), float(score.max()), steps)
    values = np.array([limits_at(float(t)) for t in grid])
    result = []
    for side in (0, 1):
        best = int(np.argmin(values[:, side]))
        a = float(grid[max(best - 1, 0)])
        b = float(grid[min(best + 1, steps - 1)])
        t_golden = golden_section(lambda t, side=side: limits_at(t)[side], a, b, tol=1e-6 * (b - a))
        result.append(min(values[best, side], limits_at(t_golden)[side]))
    return -result[0], result[1], len(cache)


def golden_section(f: Callable[[float], float], a: float, b: float, tol: float) -> float:
    """Minimum of f on [a, b] by golden-section search (assumes one minimum)."""
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - inv_phi * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + inv_phi * (b - a)
            fd = f(d)
    return c if fc <= fd else d


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    score, sm, eft = generate(args.events, args.seed)
    print(
        f"generated {args.events:,} events x (SM + 7 x LIN/QUAD)"
        f" in {time.perf_counter() - t0:.1f} s"
    )

    t0 = time.perf_counter()
    exact = {}
    n_thresholds = 0
    for op, (lin, quad) in eft.items():
        scan = scan_thresholds(
            ScoreSample(score, sm), ScoreSample(score, lin), ScoreSample(score, quad)
        )
        n_thresholds = len(scan)
        exact[op] = solve_proxy(scan, Z, ADMISSIBLE)
    t_exact = time.perf_counter() - t0

    t0 = time.perf_counter()
    paper = {}
    evaluations = 0
    for op, (lin, quad) in eft.items():
        c_minus, c_plus, n_eval = paper_limits(score, sm, lin, quad, args.steps)
        paper[op] = (c_minus, c_plus)
        evaluations += n_eval
    t_paper = time.perf_counter() - t0

    print(f"exact scan : {t_exact:8.2f} s  (7 operators x {n_thresholds:,} distinct thresholds)")
    print(
        f"paper      : {t_paper:8.2f} s  ({evaluations} thresholds visited: grid of "
        f"{args.steps} + golden-section, coarse-to-fine c)"
    )
    print(f"ratio paper / exact: {t_paper / t_exact:.1f}x")
    print(
        f"{'operator':9s} {'exact c-':>12s} {'paper c-':>12s} {'exact c+':>12s} {'paper c+':>12s}"
        f" {'exact t+':>9s}  ok"
    )
    all_ok = True
    for op in OPERATORS:
        e = exact[op]
        p_minus, p_plus = paper[op]
        e_minus = -math.inf if e.c_minus is None else e.c_minus
        e_plus = math.inf if e.c_plus is None else e.c_plus
        ok = abs(e_minus) <= abs(p_minus) * (1 + 1e-9) and e_plus <= p_plus * (1 + 1e-9)
        all_ok &= ok
        print(
            f"{op:9s} {e_minus:12.6g} {p_minus:12.6g} {e_plus:12.6g} {p_plus:12.6g}"
            f" {e.threshold_plus or math.nan:9.4g}  {'yes' if ok else 'NO'}"
        )
    print("exact scan at least as sensitive on every operator and side:", "yes" if all_ok else "NO")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
