"""Benchmark: peak memory (RSS) of `vbsad train` against the number of events.

For each size N (SM events; N / 2 per LIN and QUAD term of cW), synthetic ROOT ntuples go
through the real `build_datasets` (60/20/20 split, no selection), then one `vbsad train
--model KIND --force` process per model kind trains 2 epochs (batch 2048) and its peak RSS is
read by a small wrapper process (`tests/test_training_memory.py`: the same data and the same
measurement as the test). Printed per size and kind: SM training events, peak RSS (MB), its
growth over the smallest size, and the wall time of the training process (TensorFlow's start
included).

The training streams its datasets from Parquet (`vbsad_batch.models.training_data`), so the
peak should level off once the data fill the fixed buffers (a shuffle window of 65536 rows, a
Parquet row group, a validation batch): what remains is TensorFlow (~650 MB) and those buffers.

    python benchmarks/training_memory.py                        # 100k, 400k, 1M; vae and vae_nn
    python benchmarks/training_memory.py --events 250000 1000000 --kinds vae_nn
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_training_memory import peak_rss_of_train, synthetic_analysis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, nargs="+", default=[100_000, 400_000, 1_000_000], help="SM events"
    )
    parser.add_argument("--kinds", nargs="+", default=["vae", "vae_nn"], help="model kinds")
    args = parser.parse_args()
    import polars as pl  # noqa: PLC0415

    first: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vbsad-bench-train-memory-") as tmp:
        header = ("SM events", "kind", "SM train", "peak RSS MB", "growth", "s")
        print("{:>10} {:>7} {:>9} {:>12} {:>7} {:>6}".format(*header))
        for n in args.events:
            config = synthetic_analysis(Path(tmp) / f"n{n}", n)
            sm_train = config.parent / "out" / "datasets" / "sm_train.parquet"
            n_train = pl.scan_parquet(sm_train).select(pl.len()).collect().item()
            for kind in args.kinds:
                start = time.perf_counter()
                peak = peak_rss_of_train(config, kind) / 2**20
                seconds = time.perf_counter() - start
                growth = peak / first.setdefault(kind, peak) - 1.0
                print(
                    f"{n:>10} {kind:>7} {n_train:>9} {peak:>12.0f} {growth:>+7.1%} {seconds:>6.1f}"
                )


if __name__ == "__main__":
    main()
