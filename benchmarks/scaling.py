"""Benchmark: the whole chain at growing sample sizes, per stage CPU time and peak memory.

For each size N (SM events; default 1e5, 1e6 and 4e6) the run uses demo samples of N SM events
and 0.2 N per LIN and per QUAD sample of the 7 demo operators (3.8 N events in all, as in the
measurements of issue 16). Sizes up to `--base` (1e5) are written by `vbsad demo-data -n N
--eft-events 0.2N` (about 5 minutes per 1e5 on 2 cores: the toy generator is not made for
10^6); a larger N must be a multiple of the base and is the base sample's events repeated
N / base times, as further gzip members of each file (so nothing is recompressed; the files
stay valid LHE, the banner's event count is then the base's). The cost of every stage depends
on the number of events, not on whether they repeat. For each size, the demo's analysis config
(short training: `--epochs`, no bootstrap), and every stage as its own `vbsad` process:

    preprocess --config, datasets, train --model vae, train --model vae_nn,
    score --model vae, score --model vae_nn, scan, report

Each stage's CPU time (user + system, the process and its children) and peak resident memory
come from the kernel (`os.wait4`), not from sampling. The table gives them per size and, over
the sizes, the fitted growth of CPU time (the exponent b of CPU ~ N^b: 1 is linear) and of
memory (a straight line RSS = a + c N: the fixed part a in MB and c in bytes per SM event),
the CPU seconds per 10^6 SM events (the slope of a straight line through the CPU times),
and the largest N whose peak memory fits a 4 GB batch slot (extrapolated along that line;
"any" when memory does not grow with N).

Samples are cached in the scratch directory (`<scratch>/n<N>/data`), so a second run only
times the stages. Sizes are in SM events; the demo is a toy, not physics: what matters here
is how the cost grows.

Usage: python benchmarks/scaling.py [--sizes 1e5 1e6 4e6] [--base 1e5] [--epochs 5]
    [--scratch DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vbsad_batch.demo.demo_config import DEMO_DEFAULT, demo_config_toml

SLOT_BYTES = 4e9  # a 4 GB batch slot
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("preprocess", ("preprocess", "--config", "{config}")),
    ("datasets", ("datasets", "{config}")),
    ("train vae", ("train", "{config}", "--model", "vae")),
    ("train vae_nn", ("train", "{config}", "--model", "vae_nn")),
    ("score vae", ("score", "{config}", "--model", "vae")),
    ("score vae_nn", ("score", "{config}", "--model", "vae_nn")),
    ("scan", ("scan", "{config}")),
    ("report", ("report", "{config}")),
)


@dataclasses.dataclass(frozen=True)
class Measured:
    """One stage at one size: CPU seconds (user + system), wall seconds, peak RSS in bytes."""

    cpu_s: float
    wall_s: float
    rss_bytes: float


def _vbsad(*args: str) -> list[str]:
    return [sys.executable, "-m", "vbsad_batch", *args]


def measure(command: list[str], log: Path) -> Measured:
    """Run `command` to its end; its rusage from `os.wait4` (children included: none here
    outlive it). Fails with the log's tail if the command fails."""
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{tail}")
    return Measured(usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss * 1024.0)


def demo_samples(data: Path, n: int) -> None:
    """`vbsad demo-data` at `n` SM events into `data` (cached: skipped when complete)."""
    done = data / ".complete"
    if done.exists():
        return
    shutil.rmtree(data, ignore_errors=True)
    eft = max(1, round(0.2 * n))
    print(f"  writing demo samples: {n} SM events, {eft} per LIN/QUAD sample ...", flush=True)
    start = time.perf_counter()
    subprocess.run(
        _vbsad("demo-data", "-q", "-o", str(data), "-n", str(n), "--eft-events", str(eft)),
        check=True,
    )
    print(f"  ... {time.perf_counter() - start:.0f} s", flush=True)
    done.touch()


def repeated_samples(base: Path, data: Path, times: int) -> None:
    """Every sample of `base` with its events repeated `times` times, into `data` (cached):
    the header, the events and the end of each file as separate gzip members, the events'
    member written `times` times."""
    done = data / ".complete"
    if done.exists():
        return
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    print(f"  repeating the {base.parent.name} samples {times} times ...", flush=True)
    for source in sorted(base.glob("*.lhe.gz")):
        text = gzip.decompress(source.read_bytes())
        start = text.index(b"<event")
        end = text.rindex(b"</event>") + len(b"</event>\n")
        events = gzip.compress(text[start:end], compresslevel=6, mtime=0)
        with (data / source.name).open("wb") as out:
            out.write(gzip.compress(text[:start], mtime=0))
            for _ in range(times):
                out.write(events)
            out.write(gzip.compress(text[end:], mtime=0))
    done.touch()


def prepare(scratch: Path, n: int, base: int, epochs: int) -> Path:
    """The demo samples at size `n` (cached) and a fresh config whose outputs are new."""
    directory = scratch / f"n{n}"
    data = directory / "data"
    if n <= base:
        demo_samples(data, n)
    else:
        if n % base:
            raise SystemExit(f"--sizes: {n} is larger than --base {base} but not a multiple")
        demo_samples(scratch / f"n{base}" / "data", base)
        repeated_samples(scratch / f"n{base}" / "data", data, n // base)
    shutil.rmtree(directory / "analysis", ignore_errors=True)
    (directory / "analysis").mkdir()
    settings = dataclasses.replace(
        DEMO_DEFAULT, epochs=epochs, patience=epochs, batch_size=1024, bootstrap_replicas=0
    )
    config = directory / "analysis" / "ana.toml"
    config.write_text(demo_config_toml("../data", settings), encoding="utf-8")
    return config


def fit(sizes: list[int], values: list[float]) -> tuple[float, float, float]:
    """(exponent of a power law through the points, intercept and slope of a straight line)."""
    x = np.asarray(sizes, dtype=float)
    y = np.asarray(values, dtype=float)
    exponent = float(np.polyfit(np.log(x), np.log(np.maximum(y, 1e-9)), 1)[0])
    slope, intercept = np.polyfit(x, y, 1)
    return exponent, float(intercept), float(slope)


def largest_n(intercept: float, slope: float) -> str:
    """The largest N (SM events) whose peak memory fits `SLOT_BYTES` along the line."""
    if slope <= 0 or slope * 1e9 < 1:  # under 1 byte per 1000 SM events: flat
        return "any"
    n = (SLOT_BYTES - intercept) / slope
    return "none" if n <= 0 else f"{n:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e5, 1e6, 4e6])
    parser.add_argument(
        "--base",
        type=float,
        default=1e5,
        help="largest size written by demo-data; larger ones repeat it (default: 1e5)",
    )
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5)")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/vbsad-scaling"))
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes})
    if len(sizes) < 2:
        parser.error("--sizes: at least two sizes to fit a growth")

    results: dict[str, dict[int, Measured]] = {name: {} for name, _ in STAGES}
    for n in sizes:
        directory = args.scratch / f"n{n}"
        directory.mkdir(parents=True, exist_ok=True)
        print(f"N = {n:.0e} SM events ({3.8 * n:.2e} in all)", flush=True)
        config = prepare(args.scratch, n, int(args.base), args.epochs)
        for name, template in STAGES:
            command = _vbsad("-q", *(a.format(config=config) for a in template))
            log = directory / "analysis" / f"{name.replace(' ', '_')}.log"
            m = measure(command, log)
            results[name][n] = m
            print(
                f"  {name:<13} cpu {m.cpu_s:8.1f} s  wall {m.wall_s:7.1f} s  "
                f"peak {m.rss_bytes / 1e6:7.0f} MB",
                flush=True,
            )

    print()
    head = " | ".join(f"CPU s @ {n:.0e}" for n in sizes)
    mem = " | ".join(f"MB @ {n:.0e}" for n in sizes)
    print(
        f"| stage | {head} | CPU exponent | CPU s per 1e6 | {mem} | MB + B/event "
        "| largest N in 4 GB |"
    )
    print("|---" * (2 * len(sizes) + 5) + "|")
    table = {}
    for name, _ in STAGES:
        cpu = [results[name][n].cpu_s for n in sizes]
        rss = [results[name][n].rss_bytes for n in sizes]
        exponent, _, cpu_slope = fit(sizes, cpu)
        _, a, c = fit(sizes, rss)
        fits = largest_n(a, c)
        cpu_cells = " | ".join(f"{v:.1f}" for v in cpu)
        mem_cells = " | ".join(f"{v / 1e6:.0f}" for v in rss)
        print(
            f"| {name} | {cpu_cells} | {exponent:.2f} | {cpu_slope * 1e6:.1f} | {mem_cells} | "
            f"{a / 1e6:.0f} + {max(c, 0.0):.0f} | {fits} |"
        )
        table[name] = {
            "cpu_s": dict(zip(sizes, cpu, strict=True)),
            "wall_s": {n: results[name][n].wall_s for n in sizes},
            "peak_rss_bytes": dict(zip(sizes, rss, strict=True)),
            "cpu_exponent": exponent,
            "cpu_s_per_event": cpu_slope,
            "rss_fixed_bytes": a,
            "rss_bytes_per_event": c,
            "largest_n_in_4gb": fits,
        }
    total = [sum(results[name][n].cpu_s for name, _ in STAGES) for n in sizes]
    print(
        f"\nwhole chain CPU s: {', '.join(f'{t:.0f}' for t in total)}; exponent "
        f"{fit(sizes, total)[0]:.2f}; {os.cpu_count()} cores; epochs {args.epochs}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps({"sizes": sizes, "stages": table}, indent=1))


if __name__ == "__main__":
    main()
