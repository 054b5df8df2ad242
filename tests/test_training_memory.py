"""The memory of `vbsad train` does not grow with the number of events: peak RSS of a real
VAE+NN training (a `vbsad train` process: TensorFlow, the datasets streamed from Parquet, 2
epochs) on N and on 4N SM events (and the mixed set that goes with them) differs by less than
10%.

The events are synthetic (ROOT ntuples of an SM, a LIN and a QUAD sample of cW written with
`write_ntuple`, no selection), so that 4N events take seconds to make, through the real
`build_datasets`. N = 100k SM events (60k SM training events, 120k mixed): past the buffers'
caps (`WINDOW_ROWS`, `EVAL_BATCH_SIZE`, ...), so that the rest is flat. Before the training
streamed it held every column of every dataset (a 64-character `input_sha256` per row among
them): measured here, 851 MB at N and 1106 MB at 4N (+30%); streamed, 868 and 876 MB (+1%).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from vbsad_batch.config import load_config
from vbsad_batch.ingest.root_ntuple import write_ntuple
from vbsad_batch.weighting.datasets import build_datasets

pytest.importorskip("tensorflow")

N_EVENTS = 100_000
"""SM events of the smaller run (the larger has 4 times as many)."""

CONFIG = """
operators = ["cW"]
training_operator = "cW"
selection = ""
output_dir = "out"

[split]
train = 0.6
validation = 0.2
test = 0.2
seed = 0

[training]
epochs = 2
patience = 2
batch_size = 2048
learning_rate = 0.003

[[samples]]
name = "sm"
component = "sm"
files = "ntuple_sm.root"

[[samples]]
name = "lin"
component = "lin"
operator = "cW"
files = "ntuple_lin.root"

[[samples]]
name = "quad"
component = "quad"
operator = "cW"
files = "ntuple_quad.root"
"""


def _events(n: int, seed: int, *, signed: bool) -> pl.DataFrame:
    """n synthetic events with the observables of an ntuple (GeV, radians) and weights w
    (pb; of both signs for an interference term)."""
    rng = np.random.default_rng(seed)
    leptons = np.sort(rng.exponential(60.0, (n, 2)) + 20.0, axis=1)[:, ::-1]
    jets = np.sort(rng.exponential(80.0, (n, 2)) + 30.0, axis=1)[:, ::-1]
    eta = rng.normal(0.0, 2.0, (n, 4))
    low = -0.5 if signed else 0.5
    return pl.DataFrame(
        {
            "mll": rng.exponential(100.0, n) + 10.0,
            "mjj": rng.exponential(500.0, n) + 200.0,
            "ptl1": leptons[:, 0],
            "ptl2": leptons[:, 1],
            "ptj1": jets[:, 0],
            "ptj2": jets[:, 1],
            "ptll": rng.exponential(80.0, n) + 1.0,
            "met": rng.exponential(50.0, n) + 1.0,
            "etal1": eta[:, 0],
            "etal2": eta[:, 1],
            "etaj1": eta[:, 2],
            "etaj2": eta[:, 3],
            "deltaetajj": np.abs(eta[:, 2] - eta[:, 3]) + 2.1,
            "deltaphijj": rng.uniform(0.0, np.pi, n),
            "w": rng.uniform(low, 1.5, n) * 1e-3,
        }
    )


def synthetic_analysis(directory: Path, n: int) -> Path:
    """A config on synthetic samples of n SM events (n / 2 per EFT term), its datasets built."""
    directory.mkdir(parents=True)
    for name, seed, size in (("sm", 1, n), ("lin", 2, n // 2), ("quad", 3, n // 2)):
        events = _events(size, seed, signed=name == "lin")
        total = float(events["w"].sum())
        write_ntuple(
            events, directory / f"ntuple_{name}.root", sample=name, xsec_pb=total, sumw=total
        )
    path = directory / "analysis.toml"
    path.write_text(CONFIG, encoding="utf-8")
    build_datasets(load_config(path))
    return path


# A small Python process runs `vbsad train` and reports its peak RSS. Not measured from this
# process directly: a child's ru_maxrss counts the pages it shares with its parent between fork
# and exec, so a test process grown large (building the datasets) would be measured instead.
_MEASURE = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=False)
sys.stderr.write(proc.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if proc.returncode == 0 else -1)
"""


def peak_rss_of_train(config: Path, kind: str = "vae_nn") -> int:
    """Peak resident memory (bytes) of one `vbsad train --model KIND --force` process."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    train = [sys.executable, "-m", "vbsad_batch", "-q", "train", str(config), "--model", kind]
    train.append("--force")
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *train],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    kilobytes = int(proc.stdout.split()[-1])
    assert kilobytes > 0, proc.stderr  # the training failed
    return kilobytes * 1024  # ru_maxrss is in kB on Linux


def test_peak_memory_of_train_does_not_grow_with_the_events(tmp_path: Path) -> None:
    peaks = []
    for n in (N_EVENTS, 4 * N_EVENTS):
        config = synthetic_analysis(tmp_path / f"n{n}", n)
        peaks.append(peak_rss_of_train(config))
        metrics = config.parent / "out" / "models" / "vae_nn_latent3_cW" / "metrics.json"
        trained = json.loads(metrics.read_text())
        assert trained["epochs_run"] == 2
        train_rows = pl.scan_parquet(config.parent / "out" / "datasets" / "sm_train.parquet")
        assert trained["n_train"] == train_rows.select(pl.len()).collect().item()
    small, large = peaks
    print(f"peak RSS of vbsad train: {small / 2**20:.0f} MB at N, {large / 2**20:.0f} MB at 4N")
    assert large < 1.10 * small, f"{small / 2**20:.0f} MB at N, {large / 2**20:.0f} MB at 4N"
