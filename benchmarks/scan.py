"""Benchmark: the exact threshold scan of vbsad_batch.scan (statistics, sm_column) as it is, as
it was before the SM side was shared and the Asimov solve pruned, and versus the reference
paper's method; and the same scan on 1 and 2 MPI ranks.

A seeded synthetic reweighted sample (numpy) of N events is made: an anomaly score per event
(float32 values, so there are ties, as from a model), the SM yield (events at 350 fb^-1, ~925 in
all) and, for each of 7 operators, the LIN (both signs) and QUAD yields, with EFT events
concentrated at high scores (each operator from its own seeded stream, so that a rank can make
only its own). Generation is never timed. Then, in one run:

- now: `SMColumn` once (the SM events sorted, summed and their Asimov signals solved once for
  every operator), then per operator its scan, `solve_proxy` and `solve_asimov` (only the
  thresholds that can hold the Asimov limit are solved);
- before: per operator `scan_thresholds`, then the proxy and Asimov roots at every admissible
  threshold, the latter with the solver of before (`legacy_asimov_signals`: Newton iterations
  over the whole chunk until every threshold has converged); both must agree to 1e-12;
- paper (unless --no-paper): a stepped threshold grid (`--steps` thresholds between the lowest
  and highest score), a golden-section search over the threshold around the best grid point,
  and at every threshold visited a coarse-to-fine scan in c (101 points over [0, 100] per
  side, refined 4 times by 101 points within the first bracket reaching sigma = 3; its value
  is the bracket's upper end), proxy only. Regions are summed with boolean masks.

All use the same admissibility (>= 10 SM MC events and >= 1 SM event in the region). Printed:
CPU and wall seconds of each (CPU: this process only, robust to other load), the ratios, per
operator the limits; the exact scan must be at least as sensitive as the paper's (|c| smaller
or equal) on every operator and side.

With --ranks, the "now" scan runs under `mpiexec -n 1` and `mpiexec -n 2` (each rank the
operators of its block, `vbsad_batch.scan.schedule.blocks`, making only its own operators'
data; the ranks that scan operators sort the SM events together first, as `vbsad scan` does:
`schedule.shared_sorts`, `sm_sharing.build_shared_columns`), `--repeat` times each in turn:
per rank CPU and wall seconds and peak RSS of the least-CPU run of each (the least disturbed
by other load), the 2-rank efficiency T(1 rank) / (2 max T(rank of 2)) of those and of each
repetition, and every run's limits compared with one rank's bit for bit.

    python benchmarks/scan.py                      # 10 million events
    python benchmarks/scan.py --events 1000000 --no-paper
    python benchmarks/scan.py --ranks --no-paper   # + 1 vs 2 MPI ranks
    python benchmarks/scan.py --ranks --no-paper --warm-mb 4800   # each run on warm memory

Measured 2026-12-07 on the shared 2-core machine under load (load average 0.5-2.5 from other
work; CPU seconds are the robust figure, wall seconds swing 2x). `--no-paper --ranks` at 10M
events: now 8.1 CPU s (8.4 wall), before 120.2 CPU s, 14.8x; limits equal to before to 1e-12.
1 vs 2 ranks (least-CPU of 3 runs each, load ~1): 5.81 CPU s vs 4.17 / 4.69 per rank,
efficiency 0.62 (repetitions 0.82, 0.62, 0.62); on user CPU alone 5.47 s vs 2.63 / 3.11,
efficiency 0.88; peak RSS 1518 MB vs 1473 / 1498 MB per rank; limits equal bit for bit.
Against the code before the shared sort, runs alternated under the same load (3 each): the
slower rank of 2 took 4.02-4.69 CPU s, before 5.66-6.39; one rank 5.68-7.25, before
5.92-8.53; efficiency of the least-CPU runs 0.61, before 0.52 (peak RSS 1518 vs 1668 MB on one
rank). The target 0.8 is reached on user CPU, not on CPU: each rank of 2 spends ~1.5 s in the
kernel (one rank ~0.35 s), mostly page faults growing its memory to about one rank's peak
(every rank holds the whole SM column: order, thresholds, suffix sums, S, counts and
efficiency per threshold, ~0.5 GB at 10M events; first touches cost ~0.3 ms per fault in this
VM); then, in user time, every rank finds the 9M distinct thresholds and sums the SM yields in
sort order (one sequential cumulative sum: split, its rounding would change), and 7 operators
split 3 / 4 (~0.6 s each).
Again on the idle machine (nothing else running; 18:10 UTC), `--no-paper --ranks`: now 7.98
CPU s, before 117.27, 14.7x; 1 rank 5.76 CPU s (5.45 user) against 3.98 / 4.59 (2.72 / 3.23
user) per rank of 2: efficiency 0.63 on CPU (repetitions 0.66, 0.62, 0.63), 0.84 on user CPU,
0.62 on wall; peak RSS 1464 vs 1420 / 1438 MB; limits equal bit for bit. The kernel time is
this VM's price of fresh memory: a process filling 1 GB of new pages (np.ones) spent 1.15 s,
then 0.24 s in a second run, in system time; two processes doing it at once, ~1.0 s each.
With the bootstrap chunks `vbsad scan` also deals (`--events 1000000 --replicas 20`):
efficiency 1.01 (CPU; repetitions 1.01, 0.96, 0.94), peak RSS 398 MB vs 391 / 395 MB per rank.
`--warm-mb N` has a child process write N MB just before each run: the guest's pages are then
backed by the host again, and the runs pay no VM first touch (a bare-metal node does not).
Idle machine, 22:28-22:34 UTC, `--no-paper --ranks` with and without `--warm-mb 4800`: now
7.48 / 7.31 CPU s, before 110.8 / 108.6 (14.8x / 14.9x). Warm: 1 rank 5.54 CPU s, 2 ranks
3.11 / 3.71 (system 0.46 / 0.53 s), efficiency 0.75 on CPU (repetitions 0.75, 0.77, 0.75),
0.72 on wall, 0.83 on user CPU. Cold: 5.52 vs 3.76 / 4.26 (system 1.17 / 1.14 s), efficiency
0.65 on CPU (0.63, 0.65, 0.64), 0.63 on wall, 0.83 on user CPU. What is left on warm memory is
the split of 7 equal operators 3 / 4 (at best 0.875 of their part) and the SM column's
sequential parts, which every rank computes (its distinct thresholds and the suffix sums).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import numpy as np

from vbsad_batch.scan.sm_column import SMColumn
from vbsad_batch.scan.statistics import (
    Admissibility,
    CoefficientLimit,
    ScoreSample,
    scan_thresholds,
    solve_asimov,
    solve_proxy,
    threshold_coefficients,
)

OPERATORS = ("cW", "cHW", "cHq1", "cqq1", "cqq11", "cqq3", "cqq31")
SM_TOTAL_YIELD = 2.64e-3 * 350_000.0  # pb x pb^-1
Z = 3.0
ADMISSIBLE = Admissibility(min_sm_mc_events=10, min_sm_yield=1.0)
C_MAX = 100.0
_EPS = float(np.finfo(np.float64).eps)


def generate_sm(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hardness, score, SM yields (events)) of n events."""
    rng = np.random.default_rng([seed, 0])
    hardness = rng.exponential(1.0, n)  # a stand-in for the energy scale of the event
    score = (hardness + rng.normal(0.0, 0.3, n)).astype(np.float32).astype(np.float64)
    sm = rng.exponential(1.0, n)
    sm *= SM_TOTAL_YIELD / sm.sum()
    return hardness, score, sm


def generate_operator(
    k: int, hardness: np.ndarray, sm: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(LIN, QUAD yields (events at c = 1)) of operator number k, from its own stream."""
    rng = np.random.default_rng([seed, k + 1])
    n = sm.size
    lin = sm * 0.05 * (k + 1) * (hardness - 0.8 + 0.2 * k) * rng.normal(1.0, 0.5, n)
    quad = sm * (0.02 + 0.01 * k) * hardness**2 * rng.exponential(1.0, n)
    return lin, quad


# --- the Asimov solver of before (for the before/after comparison only) -------------------------


def _legacy_g(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        direct = (1.0 + x) * np.log1p(x) - x
        series = np.zeros_like(x)
        power = x * x
        for n in range(2, 11):
            series = series + (1.0 if n % 2 == 0 else -1.0) * power / (n * (n - 1))
            power = power * x
    out = np.where(np.abs(x) < 1e-2, series, direct)
    return np.where(x <= -1.0, 1.0, out)


def _legacy_solve_g(target: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Bracketed Newton on the whole array until every element has converged (as before)."""
    lo, hi = lo.copy(), hi.copy()
    f_lo = _legacy_g(lo) - target
    sign_lo = np.sign(f_lo)
    x = np.where(f_lo >= 0, lo, hi)
    for _ in range(200):
        f = _legacy_g(x) - target
        same = np.sign(f) == sign_lo
        lo = np.where(same, x, lo)
        hi = np.where(same, hi, x)
        with np.errstate(all="ignore"):
            newton = x - f / np.log1p(x)
        low, high = np.minimum(lo, hi), np.maximum(lo, hi)
        inside = np.isfinite(newton) & (newton > low) & (newton < high)
        x_new = np.where(f == 0, x, np.where(inside, newton, 0.5 * (lo + hi)))
        done = (np.abs(x_new - x) <= 32 * _EPS * np.abs(x)) | ~np.isfinite(x_new)
        x = x_new
        if bool(np.all(done)):
            break
    return x


def legacy_asimov_signals(b: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"):
        r = np.where(b > 0, z**2 / (2.0 * b), np.nan)
        x_plus = _legacy_solve_g(r, np.sqrt(2 * r), r / 3 + np.sqrt(r * r / 9 + 2 * r))
        reach = r <= 1.0
        r_minus = np.where(reach, r, 0.25)
        x_minus = _legacy_solve_g(
            r_minus, np.maximum(-np.sqrt(2 * r_minus), -1.0), -np.sqrt(r_minus)
        )
    return x_plus * b, np.where(reach, x_minus * b, np.nan)


# --- the scans -----------------------------------------------------------------------------------

Limits = dict[str, tuple[float, float]]  # statistic -> (c_minus, c_plus), NaN: not reached


def _pair(limit: CoefficientLimit) -> tuple[float, float]:
    return (
        math.nan if limit.c_minus is None else limit.c_minus,
        math.nan if limit.c_plus is None else limit.c_plus,
    )


class Clock:
    """CPU seconds of this process (and their user part: without the kernel's, e.g. page
    faults) and wall seconds, summed over the timed blocks."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.user = 0.0
        self.wall = 0.0
        self._start = (0.0, 0.0, 0.0)

    def __enter__(self) -> Clock:
        user = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        self._start = (time.process_time(), user, time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu += time.process_time() - self._start[0]
        self.user += resource.getrusage(resource.RUSAGE_SELF).ru_utime - self._start[1]
        self.wall += time.perf_counter() - self._start[2]


def scan_now(
    score: np.ndarray,
    sm: np.ndarray,
    operators: Mapping[str, Callable[[], tuple[np.ndarray, np.ndarray]]],
    *,
    column: SMColumn | None = None,
    clock: Clock | None = None,
) -> tuple[dict[str, Limits], Clock]:
    """The scan as it is; `operators`: name -> its data, made when needed (not timed);
    `column`: the SM side when already built (timed by `clock`)."""
    clock = Clock() if clock is None else clock
    if column is None and operators:
        with clock:
            column = SMColumn(ScoreSample(score, sm))
    out = {}
    for op, make in operators.items():
        assert column is not None
        lin, quad = make()
        with clock:
            scanned = column.scan(ScoreSample(score, lin), ScoreSample(score, quad))
            proxy = solve_proxy(scanned.scan, Z, ADMISSIBLE)
            signals = column.asimov_signals(scanned, Z)
            asimov = solve_asimov(scanned.scan, Z, ADMISSIBLE, signals=signals)
        out[op] = {"proxy": _pair(proxy), "asimov": _pair(asimov), "t_plus": proxy.threshold_plus}
        del lin, quad, scanned
    return out, clock


def _smallest(values: np.ndarray) -> float:
    """The c of smallest |c| (NaN: none), as the limits were taken before."""
    if not np.isfinite(values).any():
        return math.nan
    return float(values[np.nanargmin(np.abs(values))])


def scan_before(
    score: np.ndarray, sm: np.ndarray, eft: dict[str, tuple[np.ndarray, np.ndarray]]
) -> tuple[dict[str, Limits], Clock]:
    """The scan as it was: everything per operator, both statistics solved at every admissible
    threshold, the Asimov roots with the solver of before."""
    clock = Clock()
    out = {}
    with clock:
        for op, (lin, quad) in eft.items():
            scan = scan_thresholds(
                ScoreSample(score, sm), ScoreSample(score, lin), ScoreSample(score, quad)
            )
            proxy = threshold_coefficients(scan, Z, ADMISSIBLE, statistic="proxy")
            asimov = threshold_coefficients(
                scan,
                Z,
                ADMISSIBLE,
                statistic="asimov",
                signals=lambda rows, scan=scan: legacy_asimov_signals(scan.sm_yield[rows], Z),
            )
            out[op] = {
                "proxy": (_smallest(proxy[0]), _smallest(proxy[1])),
                "asimov": (_smallest(asimov[0]), _smallest(asimov[1])),
            }
    return out, clock


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


def _given(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return pair


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= 1e-12 * max(abs(a), abs(b))


def worker(events: int, seed: int, replicas: int, chunk: int) -> int:
    """Under mpiexec: this rank's block of the work items (per operator the limits and chunks
    of `replicas` bootstrap replicas, as `vbsad scan` makes them), timed; rank 0 prints one
    JSON line."""
    from vbsad_batch.runtime.mpi import world  # noqa: PLC0415 - MPI only in this mode
    from vbsad_batch.scan.bootstrap import bootstrap_limits  # noqa: PLC0415
    from vbsad_batch.scan.schedule import blocks, shared_sorts  # noqa: PLC0415
    from vbsad_batch.scan.sm_sharing import build_shared_columns  # noqa: PLC0415
    from vbsad_batch.scan.work import WorkItem  # noqa: PLC0415

    comm = world()
    items = []
    for op in OPERATORS:
        items.append(WorkItem("benchmark", "score", op))
        items += [
            WorkItem("benchmark", "score", op, (a, min(a + chunk, replicas)))
            for a in range(0, replicas, chunk)
        ]
    mine = [items[i] for i in blocks(items, comm.size)[comm.rank]]
    operators = list(dict.fromkeys(item.operator for item in mine))
    hardness, score, sm = generate_sm(events, seed)
    # as `vbsad scan` does: the SM sort split between the ranks that scan an operator
    key = ("benchmark", "sm", "score")
    shared = shared_sorts(items, comm.size, lambda item: [] if item.replicas else [key])
    comm.gather(None, root=0)  # start together
    clock = Clock()
    with clock:
        built = build_shared_columns(shared, comm, lambda _: ScoreSample(score, sm))
    points = [item.operator for item in mine if item.replicas is None]
    makers = {
        op: partial(generate_operator, OPERATORS.index(op), hardness, sm, seed) for op in points
    }
    limits, clock = scan_now(score, sm, makers, column=built.get(key), clock=clock)
    built.clear()  # as one rank's scan_now, the SM side is not kept for the bootstrap
    boot: dict[str, list[list[float]]] = {}
    for op in operators:
        chunks = [item.replicas for item in mine if item.operator == op and item.replicas]
        if not chunks:
            continue
        lin, quad = generate_operator(OPERATORS.index(op), hardness, sm, seed)
        with clock:
            samples = (ScoreSample(score, sm), ScoreSample(score, lin), ScoreSample(score, quad))
            for start, stop in chunks:
                values = bootstrap_limits(
                    *samples,
                    replicas=replicas,
                    seed=seed,
                    significance=Z,
                    admissible=ADMISSIBLE,
                    replica_indices=range(start, stop),
                )
                boot.setdefault(op, []).extend(values.tolist())
        del lin, quad
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    record = {
        "rank": comm.rank,
        "size": comm.size,
        "operators": operators,
        "items": len(mine),
        "cpu_s": clock.cpu,
        "user_s": clock.user,
        "wall_s": clock.wall,
        "peak_rss_mb": peak_mb,
        "limits": limits,
        "bootstrap": boot,
    }
    everyone = comm.gather(record, root=0)
    if comm.rank == 0:
        print(json.dumps(everyone), flush=True)
    return 0


def _touch_memory(mb: int) -> None:
    """Write `mb` MB in a child process that then exits: the pages it used are then fresh to
    no one, so the next run does not pay this VM's first touch of memory the guest had given
    back (see the module docstring)."""
    if mb > 0:
        code = f"import numpy as np; np.ones({mb} * 131072)"
        subprocess.run([sys.executable, "-c", code], check=True)


def ranks(
    events: int, seed: int, replicas: int, chunk: int, repeat: int, *, warm_mb: int = 0
) -> bool:
    """`mpiexec -n 1` and `-n 2` of the worker, `repeat` times in turn (each after touching
    `warm_mb` MB in a child process): per rank count the run of least CPU (the least disturbed
    by other load), its efficiency and per-rank memory printed, and the efficiency of each
    repetition."""
    launcher = shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    if launcher is None:
        print("mpiexec not found next to the interpreter: install the 'mpi' extra")
        return False
    extra = ["--events", str(events), "--seed", str(seed), "--replicas", str(replicas)]
    extra += ["--chunk", str(chunk)]
    every: dict[int, list[list[dict]]] = {1: [], 2: []}
    for _ in range(repeat):
        for n in (1, 2):
            _touch_memory(warm_mb)
            proc = subprocess.run(
                [launcher, "-n", str(n), sys.executable, __file__, "--worker", *extra],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                print(proc.stderr)
                return False
            records = json.loads(proc.stdout.strip().splitlines()[-1])
            assert [r["size"] for r in records] == [n] * n, "not one world of that size"
            every[n].append(records)
    each = [
        one[0]["cpu_s"] / (2 * max(r["cpu_s"] for r in two))
        for one, two in zip(every[1], every[2], strict=True)
    ]
    print("2-rank efficiency (CPU) of each repetition:", " ".join(f"{e:.2f}" for e in each))
    runs = {n: min(every[n], key=lambda rs: max(r["cpu_s"] for r in rs)) for n in (1, 2)}
    print(
        f"{'ranks':>5s} {'rank':>4s} {'operators (items)':34s} {'CPU s':>7s} {'user s':>7s}"
        f" {'wall s':>7s} {'peak RSS':>10s}"
    )
    for n, records in runs.items():
        for r in records:
            label = ",".join(r["operators"]) + f" ({r['items']})"
            print(
                f"{n:5d} {r['rank']:4d} {label:34s}"
                f" {r['cpu_s']:7.2f} {r['user_s']:7.2f}"
                f" {r['wall_s']:7.2f} {r['peak_rss_mb']:7.0f} MB"
            )
    one, two = runs[1][0], runs[2]
    for what in ("cpu_s", "user_s", "wall_s"):
        efficiency = one[what] / (2 * max(r[what] for r in two))
        print(f"2-rank efficiency ({what[:-2]}, least-CPU runs): {efficiency:.2f}")
    same = True
    for records in every[1] + every[2]:  # every run, bit for bit
        same &= all(
            a == b or (math.isnan(a) and math.isnan(b))
            for r in records
            for op in r["limits"]
            for stat in ("proxy", "asimov")
            for a, b in zip(r["limits"][op][stat], one["limits"][op][stat], strict=True)
        )
        merged: dict[str, list[list[float]]] = {}
        for r in records:
            for op, values in r["bootstrap"].items():
                merged.setdefault(op, []).extend(values)
        same &= json.dumps(merged, sort_keys=True) == json.dumps(one["bootstrap"], sort_keys=True)
    print("limits of 2 ranks equal to those of 1, bit for bit:", "yes" if same else "NO")
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--no-paper", action="store_true", help="skip the paper's method")
    parser.add_argument("--ranks", action="store_true", help="also 1 vs 2 MPI ranks")
    parser.add_argument(
        "--replicas", type=int, default=0, help="bootstrap replicas per operator (--ranks)"
    )
    parser.add_argument("--chunk", type=int, default=10, help="replicas per work item")
    parser.add_argument("--repeat", type=int, default=3, help="runs of 1 and of 2 ranks (--ranks)")
    parser.add_argument(
        "--warm-mb",
        type=int,
        default=0,
        help="MB of memory a child process touches before each run of --ranks (0: none)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.events, args.seed, args.replicas, args.chunk)

    t0 = time.perf_counter()
    hardness, score, sm = generate_sm(args.events, args.seed)
    eft = {op: generate_operator(k, hardness, sm, args.seed) for k, op in enumerate(OPERATORS)}
    print(
        f"generated {args.events:,} events x (SM + 7 x LIN/QUAD)"
        f" in {time.perf_counter() - t0:.1f} s"
    )
    now, t_now = scan_now(score, sm, {op: partial(_given, pair) for op, pair in eft.items()})
    before, t_before = scan_before(score, sm, eft)
    n_thresholds = np.unique(score).size
    print(
        f"now        : {t_now.cpu:8.2f} CPU s {t_now.wall:8.2f} wall s  (7 operators x"
        f" {n_thresholds:,} distinct thresholds, proxy + Asimov)"
    )
    print(f"before     : {t_before.cpu:8.2f} CPU s {t_before.wall:8.2f} wall s")
    print(f"ratio before / now: {t_before.cpu / t_now.cpu:.1f}x (CPU)")
    unchanged = all(
        _same(a, b)
        for op in OPERATORS
        for stat in ("proxy", "asimov")
        for a, b in zip(now[op][stat], before[op][stat], strict=True)
    )
    print("limits now equal to before to 1e-12 (proxy and Asimov):", "yes" if unchanged else "NO")

    all_ok = unchanged
    if not args.no_paper:
        t_paper = Clock()
        paper = {}
        evaluations = 0
        with t_paper:
            for op, (lin, quad) in eft.items():
                c_minus, c_plus, n_eval = paper_limits(score, sm, lin, quad, args.steps)
                paper[op] = (c_minus, c_plus)
                evaluations += n_eval
        print(
            f"paper      : {t_paper.cpu:8.2f} CPU s {t_paper.wall:8.2f} wall s  ({evaluations}"
            f" thresholds visited: grid of {args.steps} + golden-section, coarse-to-fine c)"
        )
        print(f"ratio paper / now: {t_paper.cpu / t_now.cpu:.1f}x (CPU)")
        print(
            f"{'operator':9s} {'exact c-':>12s} {'paper c-':>12s} {'exact c+':>12s}"
            f" {'paper c+':>12s} {'exact t+':>9s}  ok"
        )
        for op in OPERATORS:
            e_minus, e_plus = now[op]["proxy"]
            e_minus = -math.inf if math.isnan(e_minus) else e_minus
            e_plus = math.inf if math.isnan(e_plus) else e_plus
            p_minus, p_plus = paper[op]
            ok = abs(e_minus) <= abs(p_minus) * (1 + 1e-9) and e_plus <= p_plus * (1 + 1e-9)
            all_ok &= ok
            t_plus = now[op]["t_plus"]
            print(
                f"{op:9s} {e_minus:12.6g} {p_minus:12.6g} {e_plus:12.6g} {p_plus:12.6g}"
                f" {math.nan if t_plus is None else t_plus:9.4g}  {'yes' if ok else 'NO'}"
            )
        print(
            "exact scan at least as sensitive on every operator and side:",
            "yes" if all_ok else "NO",
        )
    else:
        print(
            f"{'operator':9s} {'proxy c-':>12s} {'proxy c+':>12s} {'Asimov c-':>12s}"
            f" {'Asimov c+':>12s}"
        )
        for op in OPERATORS:
            values = (*now[op]["proxy"], *now[op]["asimov"])
            print(f"{op:9s} " + " ".join(f"{v:12.6g}" for v in values))
    if args.ranks:
        del eft
        all_ok &= ranks(
            args.events, args.seed, args.replicas, args.chunk, args.repeat, warm_mb=args.warm_mb
        )
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
