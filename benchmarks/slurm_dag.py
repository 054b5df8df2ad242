"""Benchmark: the analysis as chained Slurm jobs (`vbsad submit`) versus `vbsad run`.

On the same embedded demo (`--quick` by default, or the full demo), one run times:

* `vbsad run CONFIG` in one process (the stages one after the other);
* `vbsad submit CONFIG` on a private local Slurm (tests/local_slurm.py, 2 CPUs): from the
  submission to the end of the last job, with the wall time of each stage's job (from its
  first task's start to its last task's end, out of the logs) and the gaps between them
  (Slurm's scheduling: `sched_interval=2` s here);

checks that both write the same `scan/table.md`, and prints the ratio.

Usage: python benchmarks/slurm_dag.py [--full] [--scratch DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from local_slurm import LocalSlurm  # noqa: E402 - tests/ on the path first

from vbsad_batch.demo.demo_config import DEMO_DEFAULT, DEMO_QUICK  # noqa: E402
from vbsad_batch.demo.prepare import prepare_demo  # noqa: E402

_STAMP = re.compile(r"\[vbsad-job\] (\S+Z) (start|end)")


def vbsad(*args: object) -> list[str]:
    return [sys.executable, "-m", "vbsad_batch", *map(str, args)]


def stage_spans(out: Path) -> dict[str, tuple[float, float]]:
    """Per stage, (first start, last end) as epoch seconds, from the jobs' logs."""
    spans: dict[str, tuple[float, float]] = {}
    for log in (out / "slurm" / "logs").iterdir():
        stage = log.name.split("_", 1)[0].removeprefix("vbsad-")
        for stamp, what in _STAMP.findall(log.read_text()):
            t = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
            start, end = spans.get(stage, (float("inf"), float("-inf")))
            seconds = t.timestamp()
            spans[stage] = (
                min(start, seconds) if what == "start" else start,
                max(end, seconds) if what == "end" else end,
            )
    return spans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the full demo, not --quick's")
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args(argv)
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="vbsad-dag-"))
    settings = DEMO_DEFAULT if args.full else DEMO_QUICK
    for name in ("local", "slurm"):
        shutil.rmtree(scratch / name, ignore_errors=True)
    local_config, _ = prepare_demo(scratch / "local", settings)
    slurm_config, _ = prepare_demo(scratch / "slurm", settings)

    start = time.monotonic()
    subprocess.run(vbsad("run", local_config, "-q"), check=True, capture_output=True)
    local_s = time.monotonic() - start

    with LocalSlurm(scratch / "cluster", cpus=2, memory_mb=8000) as cluster:
        start = time.monotonic()
        submit = subprocess.run(
            vbsad("submit", slurm_config, "--resource", "scan.ntasks=2"),
            env=cluster.env,
            capture_output=True,
            text=True,
            check=True,
        )
        document = json.loads((slurm_config.parent / "slurm" / "submission.json").read_text())
        jobs = document["submissions"][-1]["jobs"]
        for job in jobs:
            records = cluster.wait(job["job_id"], timeout=3600, poll=0.2)
            if any(r.state != "COMPLETED" for r in records):
                raise RuntimeError(f"{job['stage']}: {records}\n{submit.stdout}")
        dag_s = time.monotonic() - start

    same = (scratch / "local" / "scan" / "table.md").read_bytes() == (
        scratch / "slurm" / "scan" / "table.md"
    ).read_bytes()
    spans = stage_spans(slurm_config.parent)
    print(f"Slurm DAG versus vbsad run, {'full' if args.full else 'quick'} demo, 2 CPUs")
    print(f"{'stage':<11} {'tasks':>5} {'job wall s':>10}")
    previous_end = None
    gaps = 0.0
    for job in jobs:
        first, last = spans.get(job["stage"], (float("nan"), float("nan")))
        tasks = len(job["array_tasks"]) if job["array_tasks"] is not None else 1
        print(f"{job['stage']:<11} {tasks:>5} {last - first:>10.0f}")
        if previous_end is not None:
            gaps += max(0.0, first - previous_end)
        previous_end = last
    print(
        f"vbsad run: {local_s:.1f} s; vbsad submit to the last job's end: {dag_s:.1f} s "
        f"(ratio {dag_s / local_s:.2f}); waiting between stages: {gaps:.0f} s"
    )
    print(f"tables identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
