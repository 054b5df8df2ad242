"""Benchmark: training on 1 vs N MPI ranks, data parallel and task parallel.

Data: the embedded toy demo sample (NOT physics) through the real pipeline, as
`benchmarks/training.py` builds it (`make_config`: demo LHE -> `build_datasets`, 60/20/20
split). Each measurement is a fresh process (`mpiexec -n N` from the venv's MPICH wheel for
N > 1, plain `python` for 1 rank: how each is run for real), timed after TensorFlow's import;
the ranks size TensorFlow's thread pools with `configure_threads` (N ranks on C cores:
C // N threads each, as `vbsad train` does), the 1-rank run keeps TensorFlow's default (every
core) and is measured again with one rank's share of the cores (C // N threads). Two parallel
efficiencies T1 / (N * TN): "eff." against the 1-rank run on every core (what N ranks gain on
this machine), "eff.(share)" against the 1-rank run with one rank's threads (the overhead of
the parallelism itself: 1.0 is perfect).

- Data parallel (`[training] data_parallel = true`): one VAE, global batch `--batch-size` (4096)
  at Adam `--learning-rate` (0.01), `--epochs` epochs (`train(..., force=True, comm=...)`).
  Printed: time per epoch and events/s (steady state: the first epoch, which traces the
  graphs, is left out), the Allreduce time per step as rank 0 sees it in the training (its
  waits for the other ranks included, from metrics.json) and alone (a loop of Allreduce calls
  on a buffer of the same size: the MPI cost itself), and the parallel efficiency
  T1 / (N * TN) of the steady epoch time.
- Task parallel: a grid of `--grid` VAEs (seeds 0..grid-1; batch `--grid-batch-size`, 512,
  Adam 0.003, `--grid-epochs` epochs) trained by `train_models` round-robin over the ranks.
  Printed: the wall time of the whole grid (tracing included: it is part of every model's
  cost), events/s over the grid, and T1 / (N * TN).

    python benchmarks/mpi_training.py                 # 200k events, 1 vs 2 ranks
    python benchmarks/mpi_training.py --ranks 1 2 4   # more rank counts (oversubscribed here)
    python benchmarks/mpi_training.py --quick         # 40k events, fewer epochs (smoke test)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
ALLREDUCE_CALLS = 2000


# --- workers (one process per rank) -----------------------------------------------------------


def _config(path: Path, **training: Any) -> Any:
    from vbsad_batch.config import load_config  # noqa: PLC0415

    config = load_config(path)
    return dataclasses.replace(config, training=dataclasses.replace(config.training, **training))


def _allreduce_alone(comm: Any, floats: int) -> float:
    """Seconds per Allreduce of `floats` float32 (the training's buffer), MPI alone."""
    import numpy as np  # noqa: PLC0415

    from vbsad_batch.runtime.mpi import allreduce_sum  # noqa: PLC0415

    if comm.size == 1:
        return 0.0
    buffer = np.ones(floats, dtype=np.float32)
    for _ in range(100):  # warm-up
        allreduce_sum(buffer, comm=comm)
    comm.gather(None, root=0)  # start together
    start = time.perf_counter()
    for _ in range(ALLREDUCE_CALLS):
        allreduce_sum(buffer, comm=comm)
    return (time.perf_counter() - start) / ALLREDUCE_CALLS


def worker(args: argparse.Namespace) -> None:
    """One rank of a measurement; rank 0 writes the figures as JSON to `args.out`."""
    from vbsad_batch.models.parallel import configure_threads, train_models  # noqa: PLC0415
    from vbsad_batch.models.training import train  # noqa: PLC0415
    from vbsad_batch.runtime.mpi import world  # noqa: PLC0415

    comm = world()
    assert comm.size == args.expect_ranks, f"world of {comm.size}, expected {args.expect_ranks}"
    threads = configure_threads(comm)
    if args.threads:  # the 1-rank baseline with a rank's share of the cores
        import tensorflow as tf  # noqa: PLC0415

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        threads = args.threads
    figures: dict[str, Any] = {"ranks": comm.size, "threads": threads}
    if args.worker == "data":
        config = _config(
            args.config,
            data_parallel=True,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            epochs=args.epochs,
            patience=args.epochs,
        )
        start = time.perf_counter()
        result = train(config, kind="vae", force=True, comm=comm)
        figures["wall_s"] = time.perf_counter() - start
        if comm.rank == 0:
            metrics = json.loads((result.model_dir / "metrics.json").read_text())
            history = (result.model_dir / "history.csv").read_text().splitlines()[1:]
            figures["epoch_s"] = [float(line.split(",")[3]) for line in history]
            figures["n_train"] = metrics["n_train"]
            figures["val_loss"] = metrics["best_val_loss"]
            exchange = metrics.get("data_parallel") or {}
            figures["allreduce_s_per_step"] = exchange.get("allreduce_seconds_per_call")
            figures["steps"] = exchange.get("allreduce_calls_per_epoch")
        n_weights = sum(int(v.size) for v in _vae_weights(config))
        figures["buffer_floats"] = n_weights + 1
        figures["allreduce_alone_s"] = _allreduce_alone(comm, n_weights + 1)
    else:
        config = _config(
            args.config,
            batch_size=args.grid_batch_size,
            learning_rate=0.003,
            epochs=args.grid_epochs,
            patience=args.grid_epochs,
        )
        specs = [config.model_spec("vae", seed=seed) for seed in range(args.grid)]
        comm.gather(None, root=0)  # start together
        start = time.perf_counter()
        results = train_models(config, specs, comm=comm, force=True)
        comm.gather(None, root=0)
        figures["wall_s"] = time.perf_counter() - start
        if results is not None:
            figures["n_train"] = json.loads((results[0].model_dir / "metrics.json").read_text())[
                "n_train"
            ]
    if comm.rank == 0:
        Path(args.out).write_text(json.dumps(figures))


def _vae_weights(config: Any) -> list[Any]:
    from vbsad_batch.models.networks import build_model  # noqa: PLC0415

    model = build_model("vae", len(config.features), config.training)
    return [v.numpy() for v in model.trainable_variables]


# --- driver -------------------------------------------------------------------------------------


def measure(
    ranks: int, mode: str, config: Path, args: argparse.Namespace, threads: int = 0
) -> dict[str, Any]:
    """Run one measurement in fresh processes (`threads` > 0: one rank with that many
    TensorFlow threads); its figures."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    command = [sys.executable, __file__, "--worker", mode, "--config", str(config)]
    command += ["--out", str(out), "--expect-ranks", str(ranks), "--threads", str(threads)]
    for name in ("batch_size", "learning_rate", "epochs", "grid", "grid_batch_size", "grid_epochs"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent))
        if mpiexec is None:
            raise SystemExit(f"no mpiexec next to {sys.executable}: pip install mpi4py mpich")
        command = [mpiexec, "-n", str(ranks), *command]
    subprocess.run(command, check=True)
    figures: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return figures


def _steady(seconds: list[float]) -> float:
    steady = seconds[1:] or seconds
    return sum(steady) / len(steady)


Runs = dict[tuple[int, int], dict[str, Any]]
"""(ranks, threads per rank: 0 = TensorFlow's default, every core) -> figures."""


def _baseline(ranks: int, cores: int) -> tuple[int, int]:
    """The 1-rank run with the threads each of `ranks` ranks gets."""
    threads = max(1, cores // ranks)
    return (1, 0 if threads >= cores else threads)


def _row_label(key: tuple[int, int], fig: dict[str, Any]) -> str:
    return f"{key[0]:>5} {fig['threads'] or 'all'!s:>7}"


def print_tables(data: Runs, grid: Runs, args: Any, cores: int) -> None:
    """The two tables: efficiency = T1 / (N TN) against the 1-rank run on every core, and
    against the 1-rank run with one rank's share of the cores (the per-rank resources)."""
    n_train = data[(1, 0)]["n_train"]
    print(
        f"\ndata parallel: one VAE, {n_train} SM training events, global batch "
        f"{args.batch_size}, Adam {args.learning_rate:g}, {args.epochs} epochs "
        f"(steady state: epochs 2..{args.epochs})"
    )
    print(
        f"{'ranks':>5} {'threads':>7} {'s/epoch':>8} {'events/s':>10} {'Allreduce/step':>15} "
        f"{'(MPI alone)':>12} {'steps/ep':>8} {'eff.':>5} {'eff.(share)':>11} {'val_loss':>9}"
    )
    t_all = _steady(data[(1, 0)]["epoch_s"])
    for key, fig in data.items():
        tn = _steady(fig["epoch_s"])
        share = _steady(data[_baseline(key[0], cores)]["epoch_s"])
        print(
            f"{_row_label(key, fig)} {tn:>8.3f} {n_train / tn:>10,.0f} "
            f"{_ms(fig.get('allreduce_s_per_step')):>15} {_ms(fig.get('allreduce_alone_s')):>12} "
            f"{fig.get('steps') or '':>8} {_efficiency(t_all, key, tn):>5} "
            f"{_efficiency(share, key, tn):>11} {fig['val_loss']:>9.5f}"
        )
    print(f"(Allreduce buffer: {data[(1, 0)]['buffer_floats']} float32 per step)")
    print(
        f"\ntask parallel: a grid of {args.grid} VAEs (seeds 0..{args.grid - 1}), batch "
        f"{args.grid_batch_size}, {args.grid_epochs} epochs each, wall time of the whole grid "
        "(tracing included)"
    )
    print(
        f"{'ranks':>5} {'threads':>7} {'grid s':>8} {'events/s':>10} {'eff.':>5} "
        f"{'eff.(share)':>11}"
    )
    events = args.grid * args.grid_epochs * n_train
    g_all = grid[(1, 0)]["wall_s"]
    for key, fig in grid.items():
        tn = fig["wall_s"]
        share = grid[_baseline(key[0], cores)]["wall_s"]
        print(
            f"{_row_label(key, fig)} {tn:>8.2f} {events / tn:>10,.0f} "
            f"{_efficiency(g_all, key, tn):>5} {_efficiency(share, key, tn):>11}"
        )


def _efficiency(t1: float, key: tuple[int, int], tn: float) -> str:
    return f"{t1 / (key[0] * tn):.2f}" if key[0] > 1 else "-"


def _ms(seconds: float | None) -> str:
    return "-" if not seconds else f"{seconds * 1e3:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40k events, fewer epochs")
    parser.add_argument("--events", type=int, default=None, help="demo events (200000)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="rank counts (1 2)")
    parser.add_argument("--batch-size", type=int, default=4096, help="data parallel (4096)")
    parser.add_argument("--learning-rate", type=float, default=0.01, help="Adam step (0.01)")
    parser.add_argument("--epochs", type=int, default=None, help="data parallel epochs (8)")
    parser.add_argument("--grid", type=int, default=4, help="models of the grid (4)")
    parser.add_argument("--grid-batch-size", type=int, default=512, help="grid batch (512)")
    parser.add_argument("--grid-epochs", type=int, default=None, help="grid epochs (10)")
    parser.add_argument("--worker", choices=("data", "task"), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--expect-ranks", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.epochs = args.epochs or (3 if args.quick else 8)
    args.grid_epochs = args.grid_epochs or (2 if args.quick else 10)
    if args.worker:
        worker(args)
        return
    sys.path.insert(0, str(HERE))
    from training import make_config  # noqa: PLC0415 - the sibling benchmark's data

    cores = len(os.sched_getaffinity(0))
    runs = [(1, 0)] + [_baseline(n, cores) for n in args.ranks if n > 1]
    runs += [(n, 0) for n in args.ranks if n > 1]
    runs = sorted(set(runs), key=lambda key: (key[0], -key[1] if key[1] else -cores))
    n_events = args.events or (40_000 if args.quick else 200_000)
    with tempfile.TemporaryDirectory(prefix="vbsad-bench-mpi-") as tmp:
        start = time.perf_counter()
        config = make_config(Path(tmp), n_events)
        print(f"data: {n_events} demo events -> datasets in {time.perf_counter() - start:.1f} s")
        print(f"cores available: {cores}")
        data = {key: measure(key[0], "data", config.path, args, key[1]) for key in runs}
        grid = {key: measure(key[0], "task", config.path, args, key[1]) for key in runs}
        print_tables(data, grid, args, cores)


if __name__ == "__main__":
    main()
