"""Training and scoring across MPI ranks, under a REAL `mpiexec -n 2` (the MPICH wheel's launcher
next to the test interpreter; the world size is asserted inside), on the datasets of the real
SSWW samples (examples/ssww_real.toml, ~1000 SM training events):

- task parallel: a grid of 4 models trained (and scored) on 2 ranks equals, model by model, the
  grid trained on 1 rank: identical weights, and byte-identical files where the files are
  deterministic (see `_compare_model_dirs`);
- data parallel: one model on 2 ranks equals its 1-rank training to float tolerance, rank 0
  alone writes, an error of rank 0 reaches rank 1, and `resume` continues exactly;
- a failing rank fails the run on every rank with that rank's error, without a hang.

Plus, in one process: the ranks' shares of the loss sum to the global batch's loss and
gradient (the arithmetic of data parallelism), the shard split, the `data_parallel` setting.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import real_example_text, run_vbsad
from test_scan_mpi import TIMEOUT_S, mpiexec

from vbsad_batch.config import ConfigError, load_config
from vbsad_batch.runtime.mpi import shard
from vbsad_batch.weighting.datasets import build_datasets

tf = pytest.importorskip("tensorflow")
from vbsad_batch.models.model_unit import model_key  # noqa: E402 - after the TF check
from vbsad_batch.models.networks import (  # noqa: E402
    build_model,
    load_model,
    vae_loss,
    vae_loss_share,
    vae_nn_loss,
    vae_nn_loss_share,
    weight_normaliser,
)
from vbsad_batch.models.training import train  # noqa: E402
from vbsad_batch.weighting.datasets import current_datasets  # noqa: E402

TRAINING = """
[training]
seeds = {seeds}
latent_dims = {latents}
epochs = {epochs}
patience = {epochs}
batch_size = {batch}
learning_rate = 0.003
data_parallel = {data_parallel}
"""

MODEL_FILES = {
    "model.keras",
    "network.npz",
    "preprocessing.json",
    "config.toml",
    "history.csv",
    "metrics.json",
    "manifest.json",
}


def run_mpi(*args: str) -> subprocess.CompletedProcess[str]:
    """`mpiexec -n 2 python ARGS`, output captured; a hang fails the test after TIMEOUT_S."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [mpiexec(), "-n", "2", sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
        env=env,
    )


def _write_config(
    directory: Path,
    *,
    seeds: tuple[int, ...] = (0,),
    latents: tuple[int, ...] = (3,),
    epochs: int = 4,
    batch: int = 128,
    data_parallel: bool = False,
) -> Path:
    """examples/ssww_real.toml on the real samples with this module's [training] settings."""
    text = real_example_text(without=("training",))  # this module's [training] replaces it
    text = 'output_dir = "out"\n' + text
    text += TRAINING.format(
        seeds=list(seeds),
        latents=list(latents),
        epochs=epochs,
        batch=batch,
        data_parallel=str(data_parallel).lower(),
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ssww.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The datasets of examples/ssww_real.toml, written once for this module."""
    root = tmp_path_factory.mktemp("datasets")
    return build_datasets(load_config(_write_config(root))).directory


def _config_with_datasets(directory: Path, datasets_dir: Path, **settings: object) -> Path:
    path = _write_config(directory, **settings)  # type: ignore[arg-type]
    shutil.copytree(datasets_dir, directory / "out" / "datasets")
    return path


def _weights(model_dir: Path) -> list[np.ndarray]:
    return [np.asarray(w) for w in load_model(model_dir).get_weights()]


def _history(model_dir: Path) -> list[dict[str, str]]:
    with open(model_dir / "history.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _losses(model_dir: Path) -> list[tuple[str, str]]:
    """(train_loss, val_loss) per epoch of history.csv, as written."""
    return [(row["train_loss"], row["val_loss"]) for row in _history(model_dir)]


def _compare_model_dirs(one: Path, two: Path) -> None:
    """The outputs of one model trained alone (`one`) and on a rank of a task-parallel run
    (`two`), as far as they are deterministic:

    - the weights (every array of model.keras) are equal bit for bit; the file itself is not
      (Keras writes the save time into it: metadata.json's date_saved and the zip entry's time);
    - preprocessing.json and config.toml are byte-identical;
    - history.csv: equal but for its wall-time columns `seconds` and `events_per_s`;
    - metrics.json: equal but for `train_events_per_s` (a throughput);
    - manifest.json: the same key, and the same SHA-256 for every deterministic output (its
      provenance records the time, host and durations).
    """
    assert {p.name for p in one.iterdir()} == {p.name for p in two.iterdir()} == MODEL_FILES
    for a, b in zip(_weights(one), _weights(two), strict=True):
        np.testing.assert_array_equal(a, b)
    for name in ("preprocessing.json", "config.toml"):  # (the two configs are equal files)
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert _losses(one) == _losses(two)
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (one, two)]
    for m in metrics:
        m.pop("train_events_per_s")
    assert metrics[0] == metrics[1]
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (one, two)]
    assert manifests[0]["key"] == manifests[1]["key"]
    sha = [{e["path"]: e["sha256"] for e in m["outputs"]} for m in manifests]
    assert sha[0]["preprocessing.json"] == sha[1]["preprocessing.json"]
    assert manifests[0]["data_parallel_ranks"] == manifests[1]["data_parallel_ranks"] == 1


# --- under mpiexec -------------------------------------------------------------------------------


def test_task_parallel_grid_on_two_ranks_equals_one_rank(
    tmp_path: Path, datasets_dir: Path
) -> None:
    grid = {"seeds": (0, 1), "latents": (3, 5), "epochs": 4}
    single = _config_with_datasets(tmp_path / "one", datasets_dir, **grid)
    double = _config_with_datasets(tmp_path / "two", datasets_dir, **grid)
    names = ["vae_latent3", "vae_latent3_seed1", "vae_latent5", "vae_latent5_seed1"]

    alone = run_vbsad("-q", "train", single, timeout=TIMEOUT_S)
    assert alone.returncode == 0, alone.stderr
    ranks = run_mpi("-m", "vbsad_batch", "train", str(double))
    assert ranks.returncode == 0, ranks.stderr
    assert "4 model(s) on 2 rank(s) (task parallel)" in ranks.stdout  # a world of 2
    assert ranks.stdout.count("written: ") == 4  # only rank 0 prints, for every model
    for name in names:
        _compare_model_dirs(
            tmp_path / "one" / "out" / "models" / name, tmp_path / "two" / "out" / "models" / name
        )

    alone = run_vbsad("-q", "score", single, timeout=TIMEOUT_S)
    assert alone.returncode == 0, alone.stderr
    ranks = run_mpi("-m", "vbsad_batch", "score", str(double))
    assert ranks.returncode == 0, ranks.stderr
    assert "4 model(s) scored on 2 rank(s)" in ranks.stdout
    for name in names:
        files = sorted((tmp_path / "one" / "out" / "scores" / name).glob("*.parquet"))
        assert len(files) == 6  # sm, lin, quad x validation, test
        for path in files:
            twin = tmp_path / "two" / "out" / "scores" / name / path.name
            assert path.read_bytes() == twin.read_bytes(), f"{name}/{path.name}"

    again = run_mpi("-m", "vbsad_batch", "train", str(double))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped: ") == 4  # up to date, whichever rank checks


DATA_PARALLEL_SCRIPT = """
import json
import os
import sys
from pathlib import Path

from vbsad_batch.config import load_config
from vbsad_batch.models.checkpoints import CheckpointMismatchError
from vbsad_batch.models.parallel import configure_threads
from vbsad_batch.models.training import train
from vbsad_batch.runtime.mpi import RankFailure, world

comm = world()
assert comm.size == 2, comm.size
root = Path(sys.argv[1])
report = {"size": comm.size, "threads": configure_threads(comm)}
report["cpus"] = len(os.sched_getaffinity(0))

config = load_config(root / "dp" / "ssww.toml")
for kind in ("vae", "vae_nn"):
    result = train(config, kind=kind, comm=comm)
    report[kind] = [result.status, result.epochs_run, result.model_dir.name]


class Crash(Exception):
    pass


def crash_after_epoch_2(event):
    if event.kind == "item_advanced" and event.rows >= 2:
        raise Crash("the job died after epoch 2")


config = load_config(root / "crash" / "ssww.toml")
try:
    train(config, kind="vae", comm=comm, progress=crash_after_epoch_2 if comm.rank == 0 else None)
except Crash as exc:
    report["crash"] = f"Crash: {exc}"
except RankFailure as exc:
    report["crash"] = f"RankFailure: {exc}"
model_dir = root / "crash" / "out" / "models" / "vae_latent3"
comm.gather(None, root=0)  # both ranks are out of the training
report["after_crash"] = sorted(p.name for p in model_dir.iterdir())
if comm.rank == 0:  # alone, without the other rank: not the checkpoint's training
    try:
        train(config, kind="vae", resume=True)
    except CheckpointMismatchError as exc:
        report["alone"] = str(exc)
result = train(config, kind="vae", comm=comm, resume=True)
report["resumed"] = [result.status, result.reason, result.epochs_run]
(root / f"rank{comm.rank}.json").write_text(json.dumps(report))
"""


def test_data_parallel_on_two_ranks_equals_one_rank_and_resumes(
    tmp_path: Path, datasets_dir: Path
) -> None:
    """Batch 101 does not divide the ~1000 events, nor does 2 divide the last batch: shares of
    51/50 and 14/13 events (the mixed batches likewise).

    Tolerance of the weights: atol 1e-6 (and rtol 1e-5 for the larger ones). The 2-rank step
    is the 1-rank step up to float32 rounding: each rank sums its half of the batch, MPI adds the
    halves, a different summation order (relative error ~3e-7 of the gradient,
    `test_rank_shares_sum_to_the_global_loss_and_gradient`). Adam turns that into ~1e-7 of
    a weight after these 3 x 11 steps at a learning rate of 3e-3 (seen after 4 epochs: 7e-8 for
    the VAE, 2e-7 for the VAE+NN); a real error (an event counted twice or not at all, another
    noise, a wrong normalisation) moves the weights by a good part of a step, ~1e-3, at every
    step. Few
    epochs for the VAE+NN: its hard-sigmoid classifier and clipped cross-entropy have kinks,
    at which a rounding-size difference switches an event's gradient on or off; after 4-5
    epochs such a switch has happened somewhere and the runs part, by 7e-6 after 4 epochs and
    ~1e-3 later (as a 1-rank run with a different thread blocking would). With the streamed
    data order (training format 6) the switch came in the 4th epoch: hence 3 epochs.
    """
    settings = {"epochs": 3, "batch": 101, "data_parallel": True}
    reference = load_config(_config_with_datasets(tmp_path / "one", datasets_dir, **settings))
    for directory in ("dp", "crash"):
        _config_with_datasets(tmp_path / directory, datasets_dir, **settings)
    script = tmp_path / "data_parallel.py"
    script.write_text(textwrap.dedent(DATA_PARALLEL_SCRIPT))

    proc = run_mpi(str(script), str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    threads = max(1, reports[0]["cpus"] // 2)
    assert [r["threads"] for r in reports] == [threads, threads]  # 2 cores: 1 thread per rank
    for report in reports:  # every rank returns rank 0's result
        assert report["vae"] == ["written", 3, "vae_latent3"]
        assert report["vae_nn"] == ["written", 3, "vae_nn_latent3_cW"]
        assert report["resumed"] == ["resumed", "resumed after epoch 2", 3]
        assert report["after_crash"] == ["checkpoint.npz"]  # no manifest, no temp file
    assert reports[0]["crash"] == "Crash: the job died after epoch 2"
    assert reports[1]["crash"].startswith("RankFailure: rank 0 failed")
    assert "Crash: the job died after epoch 2" in reports[1]["crash"]
    assert "checkpoint of a training on 2 rank(s), resumed on 1" in reports[0]["alone"]

    n_train = pl.scan_parquet(datasets_dir / "sm_train.parquet").select(pl.len()).collect().item()
    for kind in ("vae", "vae_nn"):
        ours = train(reference, kind=kind).model_dir
        theirs = tmp_path / "dp" / "out" / "models" / ours.name
        assert {p.name for p in theirs.iterdir()} == MODEL_FILES  # rank 0 wrote, nobody else
        for a, b in zip(_weights(ours), _weights(theirs), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
        for row, twin in zip(_history(ours), _history(theirs), strict=True):
            for column in ("train_loss", "val_loss"):
                assert float(twin[column]) == pytest.approx(float(row[column]), rel=1e-5)
        manifest = json.loads((theirs / "manifest.json").read_text())
        assert manifest["data_parallel_ranks"] == 2
        assert manifest["key"] == json.loads((ours / "manifest.json").read_text())["key"]
        exchange = json.loads((theirs / "metrics.json").read_text())["data_parallel"]
        assert exchange["ranks"] == 2
        assert exchange["allreduce_calls_per_epoch"] == math.ceil(n_train / 101)

    # Resumed after the crash: the very weights and history of the uninterrupted run.
    resumed = tmp_path / "crash" / "out" / "models" / "vae_latent3"
    uninterrupted = tmp_path / "dp" / "out" / "models" / "vae_latent3"
    for a, b in zip(_weights(resumed), _weights(uninterrupted), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _losses(resumed) == _losses(uninterrupted)


def test_a_failing_rank_fails_the_task_parallel_run_on_every_rank(
    tmp_path: Path, datasets_dir: Path
) -> None:
    config = _config_with_datasets(tmp_path, datasets_dir, seeds=(0, 1), epochs=2)
    # The second model (item 1: rank 1) cannot have its directory: a file is in the way.
    blocker = tmp_path / "out" / "models" / "vae_latent3_seed1"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a directory")

    proc = run_mpi("-m", "vbsad_batch", "train", str(config))
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vbsad: error:")]
    assert len(errors) == 1, proc.stderr  # reported once, by rank 0
    assert re.search(r"rank 1 failed on work item 1 .*seed=1.*NotADirectoryError", errors[0])
    assert "vae_latent3_seed1" in errors[0]
    # Rank 0's own model is complete (the stage contract keeps finished units).
    assert (tmp_path / "out" / "models" / "vae_latent3" / "manifest.json").is_file()


def test_an_error_of_rank_0_fails_a_data_parallel_run_on_every_rank(tmp_path: Path) -> None:
    config = _write_config(tmp_path, data_parallel=True)  # no datasets
    proc = run_mpi("-m", "vbsad_batch", "train", str(config))
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vbsad: error:")]
    assert len(errors) == 1, proc.stderr  # rank 0's own error; rank 1 exits quietly
    assert "vbsad datasets" in errors[0]


# --- one process ----------------------------------------------------------------------------------


def test_shard_splits_contiguously_and_evenly() -> None:
    assert [shard(10, r, 3) for r in range(3)] == [(0, 4), (4, 3), (7, 3)]
    assert [shard(101, r, 2) for r in range(2)] == [(0, 51), (51, 50)]
    assert [shard(1, r, 3) for r in range(3)] == [(0, 1), (1, 0), (1, 0)]
    for n in range(0, 40):
        for size in range(1, 6):
            shares = [shard(n, r, size) for r in range(size)]
            assert sum(c for _, c in shares) == n
            assert all(o + c == shares[i + 1][0] for i, (o, c) in enumerate(shares[:-1]))
            assert max(c for _, c in shares) - min(c for _, c in shares) <= 1
    with pytest.raises(ValueError, match="rank"):
        shard(5, 2, 2)


@pytest.mark.parametrize(("n", "batch_size", "ranks"), [(1000, 101, 2), (70, 32, 3), (5, 32, 3)])
def test_each_rank_cuts_its_rows_of_the_global_batches(n: int, batch_size: int, ranks: int) -> None:
    """The chunks of the ranks put side by side are the 1-rank chunks: every step's global SM
    and mixed batch, each rank's rows at the offset it is told, the global batch sizes and the
    global mixed weights (their normalisation) on every rank."""
    from vbsad_batch.models.training_data import (  # noqa: PLC0415
        TrainingData,
        epoch_chunks,
        rank_epoch_chunks,
    )

    m = 37
    data = TrainingData.from_arrays(
        x_train=np.arange(n * 2, dtype=np.float32).reshape(n, 2),
        x_val=np.zeros((1, 2), dtype=np.float32),
        x_mix=np.arange(m * 2, dtype=np.float32).reshape(m, 2),
        labels=np.arange(m, dtype=np.float32) % 2,
        weights=np.linspace(-1.0, 2.0, m, dtype=np.float32),
    )
    expected = list(epoch_chunks(data, 3, 1, batch_size))
    shares = [
        list(rank_epoch_chunks(data, 3, 1, batch_size, rank=r, size=ranks)) for r in range(ranks)
    ]
    for i, (x, (x_mix, labels, weights)) in enumerate(expected):
        sm = [share[i][0] for share in shares]
        mixed = [share[i][1] for share in shares]
        for r, ((part, rows), (mix_part, mix_labels, mix_weights, mix_rows, w)) in enumerate(
            zip(sm, mixed, strict=True)
        ):
            assert tuple(rows) == (shard(x.shape[1], r, ranks)[0], x.shape[1])
            assert tuple(mix_rows) == (shard(x_mix.shape[1], r, ranks)[0], x_mix.shape[1])
            np.testing.assert_array_equal(w, weights)  # the global mixed batch's weights
            assert len(mix_labels) == len(mix_weights) == len(mix_part) == len(part)
        np.testing.assert_array_equal(np.concatenate([p for p, _ in sm], axis=1), x)
        for k, whole in enumerate((x_mix, labels, weights)):
            np.testing.assert_array_equal(np.concatenate([p[k] for p in mixed], axis=1), whole)
    data.close()


@pytest.mark.parametrize("ranks", [2, 3, 5])
@pytest.mark.parametrize("kind", ["vae", "vae_nn"])
def test_rank_shares_sum_to_the_global_loss_and_gradient(kind: str, ranks: int) -> None:
    """The arithmetic of data parallelism, without MPI: the shares of N ranks of an uneven
    global batch (37 SM events, 23 mixed ones with class-balanced weights of both signs), each
    with its rows of the global batch's sampling noise, sum to the 1-rank loss and gradient,
    to float32 rounding (seen: 3e-7 of the largest gradient component)."""
    from vbsad_batch.config import TrainingConfig  # noqa: PLC0415

    training = TrainingConfig(seed=3, beta=0.001, bce_weight=1.0)
    rng = np.random.default_rng(0)
    n, m, features = 37, 23, 5
    x = rng.random((n, features)).astype(np.float32)
    x_mix = rng.random((m, features)).astype(np.float32)
    labels = (rng.random(m) < 0.5).astype(np.float32)
    weights = rng.normal(1.0, 0.8, m).astype(np.float32)  # some negative, like LIN yields
    model = build_model(kind, features, training)  # type: ignore[arg-type]
    variables = model.trainable_variables
    noise_state = model.sampling.rng_state.numpy().copy()

    with tf.GradientTape() as tape:
        if kind == "vae":
            loss = vae_loss(model, x, True, training.beta)
        else:
            loss = vae_nn_loss(
                model, x, x_mix, labels, weights, True, training.beta, training.bce_weight
            )
    expected = [g.numpy() for g in tape.gradient(loss, variables)]

    total_loss = 0.0
    total = [np.zeros_like(g, dtype=np.float64) for g in expected]
    for rank in range(ranks):
        model.sampling.rng_state.assign(noise_state)  # every rank starts the step alike
        start, count = shard(n, rank, ranks)
        mine = x[start : start + count]
        with tf.GradientTape() as tape:
            if kind == "vae":
                share = vae_loss_share(model, mine, (start, n), float(n), beta=training.beta)
            else:
                mix_start, mix_count = shard(m, rank, ranks)
                window = slice(mix_start, mix_start + mix_count)
                share = vae_nn_loss_share(
                    model,
                    mine,
                    (start, n),
                    float(n),
                    mixed=(x_mix[window], labels[window], weights[window]),
                    mix_rows=(mix_start, m),
                    mix_normaliser=weight_normaliser(weights),
                    beta=training.beta,
                    bce_weight=training.bce_weight,
                )
        total_loss += float(share)
        for i, g in enumerate(tape.gradient(share, variables)):
            total[i] += g.numpy()
    assert total_loss == pytest.approx(float(loss), rel=1e-6)
    scale = max(float(np.max(np.abs(g))) for g in expected)
    for got, want in zip(total, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)


def test_data_parallel_is_a_setting_of_how_not_of_what(tmp_path: Path, datasets_dir: Path) -> None:
    """`[training] data_parallel` is a boolean (default false) and not part of a model's key:
    a model is current whether or not it was trained data parallel."""
    plain = load_config(_config_with_datasets(tmp_path / "a", datasets_dir))
    parallel = load_config(_write_config(tmp_path / "b", data_parallel=True))
    assert (plain.training.data_parallel, parallel.training.data_parallel) == (False, True)
    spec = plain.model_spec("vae")
    datasets = current_datasets(plain)
    assert model_key(plain, spec, datasets) == model_key(parallel, spec, datasets)
    bad = (
        _write_config(tmp_path / "c")
        .read_text()
        .replace("data_parallel = false", "data_parallel = 1")
    )
    (tmp_path / "c" / "ssww.toml").write_text(bad)
    with pytest.raises(ConfigError, match=r"training\.data_parallel: expected true or false"):
        load_config(tmp_path / "c" / "ssww.toml")
