"""Training with real TensorFlow on the datasets of the real SSWW samples (examples/ssww_real.toml,
~1000 SM training events): outputs, skip on re-run, determinism, resume after SIGKILL and
SIGTERM, and `vbsad score`."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import real_example_text

from vbsad_batch.cli import main
from vbsad_batch.config import AnalysisConfig, load_config
from vbsad_batch.runtime.progress import ProgressEvent
from vbsad_batch.runtime.provenance import sha256_file
from vbsad_batch.weighting.datasets import build_datasets

tf = pytest.importorskip("tensorflow")
from vbsad_batch.models.checkpoints import checkpoint_state  # noqa: E402
from vbsad_batch.models.networks import load_model, scores  # noqa: E402 - after the TF check
from vbsad_batch.models.paths import CHECKPOINT_NAME, model_directory  # noqa: E402
from vbsad_batch.models.preprocessing import Preprocessing  # noqa: E402
from vbsad_batch.models.training import train  # noqa: E402

# Small and fast: ~30 ms per epoch; patience = epochs so that no run stops early by chance.
TRAINING = """
[training]
epochs = {epochs}
patience = {patience}
batch_size = 128
learning_rate = 0.003
seed = {seed}
"""


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The datasets of examples/ssww_real.toml, written once for this module."""
    root = tmp_path_factory.mktemp("datasets")
    config = load_config(_write_config(root, epochs=1, patience=1, seed=0))
    result = build_datasets(config)
    return result.directory


def _write_config(directory: Path, *, epochs: int, patience: int, seed: int = 0) -> Path:
    text = real_example_text(without=("training",))  # this module's [training] replaces it
    text = (
        'output_dir = "out"\n' + text + TRAINING.format(epochs=epochs, patience=patience, seed=seed)
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ssww.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _config(
    tmp_path: Path, datasets_dir: Path, *, epochs: int = 12, patience: int = 12, seed: int = 0
) -> AnalysisConfig:
    """A config in `tmp_path` whose output directory holds a copy of the module's datasets."""
    path = _write_config(tmp_path, epochs=epochs, patience=patience, seed=seed)
    shutil.copytree(datasets_dir, tmp_path / "out" / "datasets")
    return load_config(path)


def _weights(model_dir: Path) -> list[np.ndarray]:
    return [np.asarray(w) for w in load_model(model_dir).get_weights()]


def _history(model_dir: Path) -> list[dict[str, str]]:
    with open(model_dir / "history.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_train_writes_outputs_and_the_validation_loss_falls(
    tmp_path: Path, datasets_dir: Path
) -> None:
    config = _config(tmp_path, datasets_dir, epochs=12, patience=3)
    result = train(config, kind="vae")
    directory = model_directory(config, "vae")
    assert result.status == "written"
    assert result.model_dir == directory == tmp_path / "out" / "models" / "vae_latent3"
    expected = {
        "model.keras",
        "network.npz",
        "preprocessing.json",
        "config.toml",
        "history.csv",
        "metrics.json",
        "manifest.json",
    }
    assert {p.name for p in directory.iterdir()} == expected  # no checkpoint, no temp file

    history = _history(directory)
    assert len(history) == result.epochs_run
    assert [int(row["epoch"]) for row in history] == list(range(1, result.epochs_run + 1))
    val = [float(row["val_loss"]) for row in history]
    # Seeds 0-4: the best validation loss is 0.17-0.20 times the first epoch's.
    assert min(val) < 0.5 * val[0]
    assert result.best_val_loss == pytest.approx(min(val), rel=1e-12)
    assert val[result.best_epoch - 1] == min(val)

    metrics = json.loads((directory / "metrics.json").read_text())
    assert metrics["epochs_run"] == result.epochs_run
    assert metrics["best_epoch"] == result.best_epoch
    assert (
        metrics["n_train"]
        == pl.scan_parquet(datasets_dir / "sm_train.parquet").select(pl.len()).collect().item()
    )
    assert metrics["validation_mse_mean"] > 0

    manifest = json.loads((directory / "manifest.json").read_text())
    checksums = manifest["key"]["datasets"]
    assert set(checksums) == {"sm_train", "sm_validation"}
    for name, digest in checksums.items():
        assert digest == sha256_file(config.output_dir / "datasets" / f"{name}.parquet")
    for entry in manifest["outputs"]:
        assert sha256_file(directory / entry["path"]) == entry["sha256"]
    assert (directory / "config.toml").read_bytes() == config.path.read_bytes()

    # Up to date: skipped, with or without --resume; --force retrains.
    assert train(config, kind="vae").status == "skipped"
    assert train(config, kind="vae", resume=True).status == "skipped"
    again = train(config, kind="vae", force=True)
    assert again.status == "written"
    assert again.best_val_loss == result.best_val_loss


def test_same_seed_same_weights_other_seed_other_weights(
    tmp_path: Path, datasets_dir: Path
) -> None:
    weights = []
    for run, seed in enumerate((5, 5, 6)):
        config = _config(tmp_path / f"run{run}", datasets_dir, epochs=4, seed=seed)
        train(config, kind="vae_nn")
        weights.append(_weights(model_directory(config, "vae_nn")))
    assert all(np.array_equal(a, b) for a, b in zip(weights[0], weights[1], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(weights[0], weights[2], strict=True))


def _interrupted_run(config: AnalysisConfig, sig: signal.Signals, after_epoch: int) -> int:
    """Run `vbsad train` in a subprocess, send it `sig` once the checkpoint of `after_epoch`
    exists; return the exit code."""
    model_dir = model_directory(config, "vae_nn")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "vbsad_batch", "-q", "train", str(config.path)]
    proc = subprocess.Popen(
        [*command, "--model", "vae_nn"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            state = checkpoint_state(model_dir)
            if state is not None and state["next_epoch"] >= after_epoch:
                proc.send_signal(sig)
                break
            time.sleep(0.005)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    state = checkpoint_state(model_dir)
    assert state is not None, stderr
    assert after_epoch <= state["next_epoch"] < 40, "the run was not interrupted mid-training"
    assert not (model_dir / "manifest.json").exists()
    return proc.returncode


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_resume_after_kill_gives_the_uninterrupted_weights(
    tmp_path: Path, datasets_dir: Path, sig: signal.Signals
) -> None:
    reference = _config(tmp_path / "reference", datasets_dir, epochs=40, patience=40)
    train(reference, kind="vae_nn")
    reference_dir = model_directory(reference, "vae_nn")

    config = _config(tmp_path / "killed", datasets_dir, epochs=40, patience=40)
    code = _interrupted_run(config, sig, after_epoch=3)
    model_dir = model_directory(config, "vae_nn")
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 128 + signal.SIGTERM  # vbsad's clean exit on SIGTERM
        assert not [p for p in model_dir.iterdir() if p.name.startswith(".tmp-")]

    assert main(["-q", "train", str(config.path), "--model", "vae_nn", "--resume"]) == 0
    assert not (model_dir / CHECKPOINT_NAME).exists()
    resumed_history = _history(model_dir)
    reference_history = _history(reference_dir)
    assert len(resumed_history) == len(reference_history) == 40
    for a, b in zip(resumed_history, reference_history, strict=True):
        assert (a["train_loss"], a["val_loss"]) == (b["train_loss"], b["val_loss"])
    for a, b in zip(_weights(model_dir), _weights(reference_dir), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


class _CrashError(Exception):
    pass


def _crash_after(epoch: int) -> Callable[[ProgressEvent], None]:
    """A progress callback that raises after `epoch`'s checkpoint: a run that dies there."""

    def callback(event: ProgressEvent) -> None:
        if event.kind == "item_advanced" and event.rows >= epoch:
            raise _CrashError

    return callback


def test_resume_after_a_crash_and_refusal_of_other_settings(
    tmp_path: Path, datasets_dir: Path
) -> None:
    config = _config(tmp_path, datasets_dir, epochs=5, patience=5)
    model_dir = model_directory(config, "vae_nn")
    with pytest.raises(_CrashError):
        train(config, kind="vae_nn", progress=_crash_after(2))
    state = checkpoint_state(model_dir)
    assert state is not None
    assert state["next_epoch"] == 2
    assert not (model_dir / "manifest.json").exists()

    changed = load_config(_write_config(tmp_path, epochs=6, patience=5))
    with pytest.raises(ValueError, match="checkpoint of another training"):
        train(changed, kind="vae_nn", resume=True)
    resumed = train(config, kind="vae_nn", resume=True)
    assert (resumed.status, resumed.epochs_run) == ("resumed", 5)
    # Without --resume an old checkpoint is discarded and the training starts afresh.
    with pytest.raises(_CrashError):
        train(changed, kind="vae_nn", progress=_crash_after(1))
    fresh = train(changed, kind="vae_nn")
    assert (fresh.status, fresh.epochs_run) == ("written", 6)


def test_score_writes_per_event_scores_for_every_test_dataset(
    tmp_path: Path, datasets_dir: Path
) -> None:
    config = _config(tmp_path, datasets_dir, epochs=3)
    assert main(["-q", "train", str(config.path), "--model", "vae_nn"]) == 0
    assert main(["-q", "score", str(config.path), "--model", "vae_nn"]) == 0
    scores_dir = config.output_dir / "scores" / "vae_nn_latent3_cW"
    names = {f"{c}_{split}" for c in ("sm", "lin", "quad") for split in ("test", "validation")}
    names = {n if n.startswith("sm") else f"{n}_cW" for n in names}
    assert {p.stem for p in scores_dir.glob("*.parquet")} == names
    for name in names:
        path = scores_dir / f"{name}.parquet"
        scores = pl.read_parquet(path)
        dataset = pl.read_parquet(datasets_dir / f"{name}.parquet")
        assert scores.height == dataset.height
        assert {"event", "input_sha256", "yield", "mse", "kld", "score"} <= set(scores.columns)
        assert scores["event"].to_list() == dataset["event"].to_list()
        assert scores["mse"].is_finite().all()
        assert (scores["mse"] >= 0).all()
        assert ((scores["score"] >= 0) & (scores["score"] <= 1)).all()


def test_train_and_score_help_do_not_import_tensorflow() -> None:
    code = (
        "import sys; from vbsad_batch.cli import main\n"
        "for cmd in ([], ['train'], ['score'], ['preprocess']):\n"
        "    assert main([*cmd, '--help']) == 0\n"
        "assert 'tensorflow' not in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_missing_datasets_are_a_clear_error(tmp_path: Path) -> None:
    config = load_config(_write_config(tmp_path, epochs=1, patience=1))
    with pytest.raises(FileNotFoundError, match="vbsad datasets"):
        train(config, kind="vae")
    assert main(["-q", "train", str(config.path)]) == 1


def test_fused_adam_makes_the_update_of_keras_adam() -> None:
    """The training step's fused Adam (one ResourceApplyAdam per variable on Keras' own moment
    variables) against Keras' `apply_gradients`: same weights, moments and step count after
    several steps of random gradients, within float32 rounding (atol 1e-6: a ten-thousandth of
    the learning rate, the size of one step; a wrong formula is off by a good part of a step)."""
    from vbsad_batch.config import TrainingConfig  # noqa: PLC0415
    from vbsad_batch.models.networks import build_model  # noqa: PLC0415
    from vbsad_batch.models.training_step import (  # noqa: PLC0415
        fused_adam as _fused_adam,
        make_optimizer as _make_optimizer,
    )

    training = TrainingConfig(learning_rate=0.01)
    models = [build_model("vae", 5, training) for _ in range(2)]
    optimizers = [_make_optimizer(training) for _ in range(2)]
    for model, optimizer in zip(models, optimizers, strict=True):
        optimizer.build(model.trainable_variables)
    fused = _fused_adam(optimizers[1])
    assert fused is not None
    initial = models[1].variables[0].numpy()
    # As in training: the variables are the model's, captured by the traced function.
    step = tf.function(lambda grads: fused(grads, models[1].trainable_variables))
    rng = np.random.default_rng(7)
    for _ in range(6):
        grads = [
            rng.normal(size=tuple(v.shape)).astype(np.float32)
            for v in models[0].trainable_variables
        ]
        optimizers[0].apply_gradients(zip(grads, models[0].trainable_variables, strict=True))
        step(grads)
    for reference, fast in zip(models[0].variables, models[1].variables, strict=True):
        np.testing.assert_allclose(fast.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)
    for reference, fast in zip(optimizers[0].variables, optimizers[1].variables, strict=True):
        np.testing.assert_allclose(fast.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)
    assert int(optimizers[1].iterations.numpy()) == 6
    assert not np.allclose(models[1].variables[0].numpy(), initial)  # it did update


@pytest.mark.parametrize(("n", "batch_size"), [(1000, 64), (1024, 256), (70000, 4096), (5, 32)])
def test_pipeline_serves_every_event_once_per_epoch_in_the_epochs_order(
    n: int, batch_size: int
) -> None:
    from vbsad_batch.models.training_data import (  # noqa: PLC0415
        TrainingData as _Data,
        chunks_per_epoch as _chunks_per_epoch,
        epoch_chunks as _epoch_chunks,
        epoch_order as _order,
        training_pipeline as _training_pipeline,
    )

    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    m = 37
    data = _Data.from_arrays(
        x,
        x[:1],
        np.arange(m * 2, dtype=np.float32).reshape(m, 2),
        np.arange(m, dtype=np.float32) % 2,
        np.ones(m, dtype=np.float32),
    )
    x_mix = np.arange(m * 2, dtype=np.float32).reshape(m, 2)
    chunks = iter(_training_pipeline(data, seed=3, first_epoch=1, epochs=3, batch_size=batch_size))
    for epoch in (1, 2):
        expected = list(_epoch_chunks(data, 3, epoch, batch_size))
        assert len(expected) == _chunks_per_epoch(n, batch_size)
        served = [next(chunks) for _ in expected]
        sm = np.concatenate([s.numpy().reshape(-1, 2) for s, _ in served])
        order = _order(n, 3, epoch, 0)
        np.testing.assert_array_equal(np.sort(order), np.arange(n))  # a permutation
        np.testing.assert_array_equal(sm, x[order])
        steps = sum(s.shape[0] for s, _ in served)
        assert steps == -(-n // batch_size)
        mixed = np.concatenate([mix[0].numpy().reshape(-1, 2) for _, mix in served])
        assert set(mixed[:, 0].tolist()) == set(x_mix[:, 0].tolist())
        # the mixed stream is the epoch's order of the mixed set, repeated
        mix_order = _order(m, 3, epoch, 1)
        np.testing.assert_array_equal(mixed, x_mix[mix_order[np.arange(len(mixed)) % m]])
        labels = np.concatenate([mix[1].numpy().reshape(-1) for _, mix in served])
        np.testing.assert_array_equal(labels, (mix_order % 2)[np.arange(len(mixed)) % m])
        assert [s.shape[0] for s, _ in served] == [mix[0].shape[0] for _, mix in served]
    with pytest.raises(StopIteration):
        next(chunks)
    data.close()


def test_the_epoch_order_of_a_large_set_shuffles_blocks_and_windows() -> None:
    """More events than one window: every event once per epoch, a pure function of (seed,
    epoch), other epochs and seeds other orders, and every window drawn from across the whole
    set (not the file's consecutive rows)."""
    from vbsad_batch.models.training_data import (  # noqa: PLC0415
        BLOCK_ROWS,
        WINDOW_ROWS,
        epoch_order,
        epoch_windows,
    )

    n = 2 * WINDOW_ROWS + 3 * BLOCK_ROWS + 17  # three windows, the last block short
    order = epoch_order(n, 0, 5, 0)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    np.testing.assert_array_equal(order, epoch_order(n, 0, 5, 0))
    assert not np.array_equal(order, epoch_order(n, 0, 6, 0))
    assert not np.array_equal(order, epoch_order(n, 1, 5, 0))
    windows = [len(p) for _, p in epoch_windows(n, 0, 5, 0)]
    assert sum(windows) == n
    assert len(windows) == 3  # (the window with the short last block is short by its gap)
    assert max(windows) == WINDOW_ROWS
    first = order[:WINDOW_ROWS]
    # The first window's events come from all over the set: each third holds about a third.
    thirds = np.bincount(first * 3 // n, minlength=3) / WINDOW_ROWS
    np.testing.assert_allclose(thirds, 1 / 3, atol=0.05)
    # ... and within the window consecutive events are not the file's neighbours.
    assert np.mean(np.abs(np.diff(first)) == 1) < 0.01


def test_the_data_streams_through_row_caches_that_leave_no_file(tmp_path: Path) -> None:
    """`RowCache`: rows appended in pieces read back exactly, in any range; its file is
    anonymous (nothing in its directory, even before it is closed)."""
    from vbsad_batch.models.row_cache import RowCache  # noqa: PLC0415

    values = np.random.default_rng(0).normal(size=(1000, 3)).astype(np.float32)
    cache = RowCache(3, tmp_path)
    for start in range(0, 1000, 333):
        cache.append(values[start : start + 333])
    assert cache.rows == 1000
    assert list(tmp_path.iterdir()) == []
    np.testing.assert_array_equal(cache.read(0, 1000), values)
    np.testing.assert_array_equal(cache.read(990, 2000), values[990:])
    out = np.zeros((50, 3), dtype=np.float32)
    np.testing.assert_array_equal(cache.read(100, 120, out=out), values[100:120])
    assert cache.read(1000, 1010).shape == (0, 3)
    with pytest.raises(ValueError, match="width 3"):
        cache.append(values[:, :2])
    cache.close()


def test_the_streamed_fit_equals_the_fit_on_all_rows(datasets_dir: Path) -> None:
    """The preprocessing fitted batch by batch (as training reads sm_train) is the one fitted
    on the whole table, bit for bit."""
    from vbsad_batch.models.parquet_batches import read_batches  # noqa: PLC0415

    config = load_config(datasets_dir.parent.parent / "ssww.toml")  # the fixture's
    path = datasets_dir / "sm_train.parquet"
    whole = Preprocessing.fit(pl.read_parquet(path), config.features, config.log_features)
    batches = read_batches(path, config.features, remake="", batch_rows=97)
    streamed = Preprocessing.fit_batches(batches, config.features, config.log_features)
    assert streamed == whole
    with pytest.raises(ValueError, match="column\\(s\\) nonexistent missing"):
        next(read_batches(path, ["nonexistent"], remake=""))


def test_vae_nn_early_stopping_watches_its_classifier_loss_too(
    tmp_path: Path, datasets_dir: Path
) -> None:
    """The validation loss of a VAE+NN is its training loss on the validation sets: the VAE loss
    of sm_validation plus bce_weight times the class-balanced cross-entropy of the classifier on
    mixed_validation, here recomputed with numpy from the saved model's per-event outputs."""
    config = _config(tmp_path, datasets_dir, epochs=4, patience=4)
    result = train(config, kind="vae_nn")
    model = load_model(result.model_dir)
    prep = Preprocessing.from_json((result.model_dir / "preprocessing.json").read_text())
    training = config.training

    sm = scores(model, prep.transform(pl.read_parquet(datasets_dir / "sm_validation.parquet")))
    vae_part = float(np.mean(sm["mse"].astype(np.float64) + training.beta * sm["kld"]))
    mixed = pl.read_parquet(datasets_dir / "mixed_validation_cW.parquet")
    out = scores(model, prep.transform(mixed))
    p = np.clip(out["score"].astype(np.float64), 1e-7, 1 - 1e-7)
    y = mixed["label"].to_numpy().astype(np.float64)
    w = mixed["yield"].to_numpy().astype(np.float64)
    for label in (0, 1):  # each class sums to n / 2, as in training
        w[y == label] *= (len(y) / 2) / w[y == label].sum()
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    expected = vae_part + training.bce_weight * float(np.sum(w * bce) / np.sum(np.abs(w)))
    assert result.best_val_loss == pytest.approx(expected, rel=2e-4)
    assert result.best_val_loss > vae_part * 1.5  # the classifier's part is not negligible
    manifest = json.loads((result.model_dir / "manifest.json").read_text())
    assert set(manifest["key"]["datasets"]) == {
        "sm_train",
        "sm_validation",
        "mixed_train_cW",
        "mixed_validation_cW",
    }


def test_a_training_stopped_by_its_epoch_cap_says_it_has_not_converged(
    tmp_path: Path, datasets_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path, datasets_dir, epochs=3, patience=5)
    with caplog.at_level("WARNING", logger="vbsad_batch.models.training"):
        result = train(config, kind="vae")
    assert result.epochs_run == 3  # the loss still falls after 3 epochs: best epoch 3 of 3
    assert result.best_epoch > config.training.epochs - config.training.patience
    assert not result.converged
    assert "did not converge" in caplog.text
    assert "raise [training] epochs" in caplog.text
    metrics = json.loads((result.model_dir / "metrics.json").read_text())
    manifest = json.loads((result.model_dir / "manifest.json").read_text())
    assert (metrics["converged"], manifest["converged"]) == (False, False)
    assert "did not converge" in manifest["warnings"][0]
    # Skipped re-runs say it again; a training that early stopping ended has converged.
    caplog.clear()
    with caplog.at_level("WARNING", logger="vbsad_batch.models.training"):
        assert not train(config, kind="vae").converged
    assert "did not converge" in caplog.text
    stopped = train(_config(tmp_path / "b", datasets_dir, epochs=40, patience=2), kind="vae")
    assert stopped.stopped_early
    assert stopped.converged
