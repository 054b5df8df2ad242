"""Benchmark: preprocessing a large sample standalone, as a Slurm array versus locally.

One run builds ~100 LHE files (~2 GB in all) from the real SSWW samples of
`shared/testdata/ssww` (each file: the header of one sample and its events repeated to ~20 MB,
the three samples in turn) and converts all of them three ways, each into a fresh directory:

* one process: `vbsad preprocess --files-from LIST -o DIR`;
* `--jobs 2` on this machine;
* a 4-task Slurm array on a private local Slurm (tests/local_slurm.py; 2 CPUs): the
  repository's `jobs/preprocess.sbatch` with `--array=0-3`, `VBSAD_FILES_PER_TASK` = a
  quarter of the list, timed from `sbatch` to the last task's end.

It prints wall time, MB/s of LHE text and the speed-up over one process, checks that the three
directories hold the same shards (SHA-256 of every shard's rows), and estimates Slurm's
overhead per task from an array of 4 tasks that only start vbsad (`vbsad --version`).

Usage: python benchmarks/preprocess_scale.py [--files 100] [--mb-per-file 20] [--scratch DIR]
(`make system-deps` installs Slurm.)
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from local_slurm import LocalSlurm  # noqa: E402 - tests/ on the path first

SHARED_DIR = Path(os.environ.get("VBSAD_SHARED_DIR", ROOT.parent / "shared"))
SOURCES = ("ssww_SM.lhe.gz", "ssww_cW_LIN.lhe.gz", "ssww_cW_QUAD.lhe.gz")
MB = 1_000_000


def build_inputs(directory: Path, n_files: int, mb_per_file: float) -> list[Path]:
    """`n_files` LHE files of ~`mb_per_file` MB from the real SSWW samples (reused if there)."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = []
    for name in SOURCES:
        text = gzip.decompress((SHARED_DIR / "testdata" / "ssww" / name).read_bytes())
        start = text.index(b"<event")
        end = text.rindex(b"</event>") + len(b"</event>\n")
        texts.append((text[:start], text[start:end]))
    files = []
    for i in range(n_files):
        path = directory / f"ssww_{i:04d}.lhe"
        files.append(path)
        if path.exists():
            continue
        preamble, body = texts[i % len(texts)]
        copies = max(1, math.ceil((mb_per_file * MB - len(preamble)) / len(body)))
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(preamble)
            for _ in range(copies):
                f.write(body)
            f.write(b"</LesHouchesEvents>\n")
        tmp.rename(path)
    return files


def vbsad(*args: str) -> list[str]:
    return [sys.executable, "-m", "vbsad_batch", *args]


def timed(command: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(command, check=True, capture_output=True)
    return time.monotonic() - start


def same_shards(a: Path, b: Path) -> bool:
    """Whether two directories hold the same shards with equal rows (the Parquet files
    themselves differ in their metadata: times)."""
    names = sorted(p.name for p in a.glob("*.parquet"))
    if names != sorted(p.name for p in b.glob("*.parquet")):
        return False
    return all(pq.read_table(a / n).equals(pq.read_table(b / n)) for n in names)


def run_array(cluster: LocalSlurm, list_file: Path, out: Path, per_task: int, work: Path) -> float:
    (work / "logs").mkdir(parents=True, exist_ok=True)
    env_vars = {
        "VBSAD_FILES_FROM": str(list_file),
        "VBSAD_OUTPUT": str(out),
        "VBSAD_FILES_PER_TASK": str(per_task),
        "VBSAD_COMMAND": " ".join(vbsad()),
    }
    exports = "ALL," + ",".join(f"{k}={v}" for k, v in env_vars.items())
    tasks = math.ceil(len(list_file.read_text().split()) / per_task)
    start = time.monotonic()
    job = cluster.sbatch(
        ROOT / "jobs" / "preprocess.sbatch",
        f"--array=0-{tasks - 1}",
        f"--export={exports}",
        cwd=work,
    )
    records = cluster.wait(job, timeout=3600, poll=0.2)
    seconds = time.monotonic() - start
    bad = [r for r in records if r.state != "COMPLETED"]
    if bad:
        logs = "\n".join(p.read_text()[-2000:] for p in (work / "logs").glob("*"))
        raise RuntimeError(f"array tasks failed: {bad}\n{logs}")
    return seconds


def overhead_per_task(cluster: LocalSlurm, work: Path) -> float:
    """Seconds per task of a 4-task array that only starts vbsad, minus running that alone."""
    script = work / "version.sbatch"
    script.write_text(
        "#!/bin/bash\n#SBATCH --output=/dev/null\n" + " ".join(vbsad("--version")) + "\n"
    )
    alone = min(timed(vbsad("--version")) for _ in range(3))
    start = time.monotonic()
    job = cluster.sbatch(script, "--array=0-3", cwd=work)
    cluster.wait(job, timeout=300, poll=0.1)
    wall = time.monotonic() - start
    return (wall - 2 * alone) / 2  # two CPUs: two rounds of two tasks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--mb-per-file", type=float, default=20.0)
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args(argv)
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="vbsad-preprocess-scale-"))
    inputs = build_inputs(scratch / "inputs", args.files, args.mb_per_file)
    total_mb = sum(p.stat().st_size for p in inputs) / MB
    list_file = scratch / "files.txt"
    list_file.write_text("".join(f"{p}\n" for p in inputs))
    print(
        f"preprocess scale benchmark: {len(inputs)} LHE files, {total_mb:.0f} MB, "
        f"{os.cpu_count()} CPUs; scratch {scratch}"
    )
    results: list[tuple[str, float]] = []
    outs = {}
    for label, extra in (("one process", ["--jobs", "1"]), ("--jobs 2", ["--jobs", "2"])):
        out = scratch / label.replace(" ", "_").replace("-", "")
        shutil.rmtree(out, ignore_errors=True)
        seconds = timed(vbsad("preprocess", "--files-from", str(list_file), "-o", str(out), *extra))
        results.append((label, seconds))
        outs[label] = out
    with LocalSlurm(scratch / "slurm", cpus=2, memory_mb=8000) as cluster:
        out = scratch / "slurm_array"
        shutil.rmtree(out, ignore_errors=True)
        per_task = math.ceil(len(inputs) / 4)
        seconds = run_array(cluster, list_file, out, per_task, scratch / "array")
        results.append(("Slurm array, 4 tasks", seconds))
        outs["Slurm array, 4 tasks"] = out
        overhead = overhead_per_task(cluster, scratch / "array")
    reference = outs["one process"]
    same = all(same_shards(reference, o) for o in outs.values())
    n_shards = len(list(reference.glob("*.parquet")))
    one = results[0][1]
    print(f"{'mode':<22} {'wall s':>8} {'MB/s':>8} {'speed-up':>9}")
    for label, seconds in results:
        print(f"{label:<22} {seconds:8.1f} {total_mb / seconds:8.0f} {one / seconds:8.2f}x")
    print(f"Slurm overhead per array task (start to end, vbsad --version): {overhead:.2f} s")
    print(f"shards identical in all three: {same} ({n_shards} shards)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
