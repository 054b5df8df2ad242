"""Benchmark: writing the embedded demo's LHE files by one worker process per usable core (the
default of `generate_demo`, what `vbsad run` and `vbsad demo-data` do) versus one process (how
they were written before), the same files in one run.

Each side writes the demo set of `vbsad run` (--events SM events and --eft-events per LIN and
per QUAD sample of the 7 demo operators: 15 gzip files) into a fresh directory; the sides
alternate --repeat times. Printed: wall seconds, CPU seconds of this process and of its worker
processes, the ratio of the least wall times, and whether both sides wrote the same bytes.

    python benchmarks/demo_data.py --repeat 2

Measured 2026-12-08 (00:30 UTC, at 7d76788) on this project's 2-core machine, idle but for
the benchmark: one process 22.19 / 20.73 s wall (22.2 / 20.7 CPU s); the default, 2 workers,
12.61 / 12.82 s wall (23.8 / 24.0 CPU s in the workers); least wall 20.73 against 12.61 s,
1.64x; the same bytes on both sides.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import shutil
import tempfile
import time
from pathlib import Path

from vbsad_batch.demo.lhe_writer import generate_demo
from vbsad_batch.runtime.cpus import usable_cores


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def write_set(out: Path, events: int, eft_events: int, processes: int | None) -> tuple[float, str]:
    """Wall seconds to write the demo set into `out`, and the SHA-256 of its files."""
    start = time.perf_counter()
    paths = generate_demo(out, n_events=events, eft_events=eft_events, processes=processes)
    wall = time.perf_counter() - start
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return wall, digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40_000, help="SM events (default 40000)")
    parser.add_argument("--eft-events", type=int, default=10_000, help="per LIN / QUAD sample")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side (default 2)")
    args = parser.parse_args(argv)

    print(f"{usable_cores()} usable core(s)")
    walls: dict[str, list[float]] = {"one process": [], "default": []}
    digests: set[str] = set()
    scratch = Path(tempfile.mkdtemp(prefix="vbsad-demo-bench-"))
    try:
        for _ in range(args.repeat):
            for side, processes in (("one process", 1), ("default", None)):
                out = scratch / side.replace(" ", "_")
                shutil.rmtree(out, ignore_errors=True)
                cpu_self, cpu_children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
                wall, digest = write_set(out, args.events, args.eft_events, processes)
                cpu_self = _cpu(resource.RUSAGE_SELF) - cpu_self
                cpu_children = _cpu(resource.RUSAGE_CHILDREN) - cpu_children
                walls[side].append(wall)
                digests.add(digest)
                print(
                    f"  {side:11s} wall {wall:6.2f} s   CPU here {cpu_self:6.2f} s"
                    f"   CPU of workers {cpu_children:6.2f} s"
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    one, default = min(walls["one process"]), min(walls["default"])
    print(f"least wall: one process {one:.2f} s, default {default:.2f} s, {one / default:.2f}x")
    print("same bytes on both sides:", "yes" if len(digests) == 1 else "NO")
    return 0 if len(digests) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
