"""Benchmark: this project's training (`vbsad_batch.models.training.train`: a tf.function step over
tf.data, large batch) versus the reference paper's recipe (a plain Keras `model.fit` at batch
size 32, Adam at 5e-4, early stopping on the validation loss with the best weights kept), on the
same data in one run; then the sensitivity of both trained models on the scan of the next stage.

Data: the embedded toy demo sample (`vbsad demo-data`, NOT physics), through the real pipeline: LHE
-> `build_datasets` (VBS selection, 60/20/20 split, every operator of the demo) -> the same SM
training and validation events and the same preprocessing (fitted on SM train) for both. Both train
the same VAE (`vbsad_batch.models.networks.build_model`, latent 3, seed 0) with the same loss
(`vae_loss`, beta of the config); op determinism is on for both (it is process-wide). Both use the
config's seed 0: the loss has a plateau near 0.020 that, with other seeds, both recipes can take
long to leave (seed 1: the fit reference is still on it after 8 epochs), so a time ratio is that of
one seed.

Printed:
- training throughput (events/s, steady state: the first epoch, which traces, is left out);
- time to the same validation loss. The common target is the higher of the two best
  validation losses, i.e. the lowest loss that both reached; for each side the time is its
  cumulative training wall time (tracing and the first epoch included, the per-epoch
  validation excluded for both) up to the end of the first epoch whose validation loss (the
  same VAE loss on the same SM validation events, in inference mode) is at or below it;
- sensitivity (unless --no-sensitivity): both models score every test dataset
  (`vbsad_batch.models.scoring.score_datasets`, as `vbsad score`) and one `run_scan` (as `vbsad
  scan`, the config's default [scan] settings: 3 sigma, admissibility, 100 bootstrap replicas) scans
  both; per operator the smallest |c| at 3 sigma (proxy, both sides' minimum) of each, its bootstrap
  standard deviation, and the ratio vbsad / fit (<= 1: no worse). The fit model is the
  best-validation-loss weights of its run, ours the best of its run.

    python benchmarks/training.py                   # 100k events, fit 8 epochs, ours 150
                                                    # (batch 2048, Adam 0.007)
    python benchmarks/training.py --vae-nn          # also the VAE+NN both ways
    python benchmarks/training.py --fit-epochs 40   # the reference trained closer to convergence
    python benchmarks/training.py --quick           # 30k events, fit 2 epochs (smoke test)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONFIG = """
operators = {operators}
training_operator = "{training_operator}"
output_dir = "out"

[split]
train = 0.6
validation = 0.2
test = 0.2
seed = 1

[[reweighted]]
name = "ssww_demo"
files = "demo/ssww_demo.lhe.gz"
sm_weight = "sm"
plus = "{{op}}_p1"
minus = "{{op}}_m1"
k = 1.0
"""


def make_config(directory: Path, n_events: int) -> Any:
    from vbsad_batch.config import load_config  # noqa: PLC0415
    from vbsad_batch.demo.lhe_writer import DEFAULT_OPERATORS, generate_demo  # noqa: PLC0415
    from vbsad_batch.weighting.datasets import build_datasets  # noqa: PLC0415

    generate_demo(directory / "demo", n_events=n_events, seed=1, eft_samples=False)
    path = directory / "bench.toml"
    operators = "[" + ", ".join(f'"{op}"' for op in DEFAULT_OPERATORS) + "]"
    text = CONFIG.format(operators=operators, training_operator=DEFAULT_OPERATORS[0])
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    build_datasets(config)
    return config


def first_time_below(times: list[float], losses: list[float], target: float) -> float:
    """Cumulative training time (s) at the end of the first epoch with loss <= target."""
    elapsed = 0.0
    for seconds, loss in zip(times, losses, strict=True):
        elapsed += seconds
        if loss <= target:
            return elapsed
    return math.inf


def run_project(
    config: Any, batch_size: int, learning_rate: float, epochs: int, kind: str = "vae"
) -> dict[str, Any]:
    from vbsad_batch.models.training import train  # noqa: PLC0415

    training = dataclasses.replace(
        config.training,
        batch_size=batch_size,
        learning_rate=learning_rate,
        epochs=epochs,
        patience=epochs,
    )
    result = train(dataclasses.replace(config, training=training), kind=kind, force=True)
    with open(result.model_dir / "history.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {
        "seconds": [float(r["seconds"]) for r in rows],
        "val_loss": [float(r["val_loss"]) for r in rows],
        "model_dir": result.model_dir,
    }


def _balanced_weights(labels: Any, yields: Any) -> Any:
    """Per-event classifier weights as the project's training uses them: each class's yields
    scaled to a total of n / 2 (LIN yields may be negative and are kept)."""
    import numpy as np  # noqa: PLC0415

    weights = yields.astype(np.float64)
    for label in (0, 1):
        mask = labels == label
        weights[mask] *= (len(labels) / 2) / weights[mask].sum()
    return weights.astype(np.float32)


def _mixed_pairs(config: Any, prep: Any, n_train: int, x_train: Any, seed: int) -> Any:
    """VAE+NN fit input: each shuffled SM batch of 32 paired with a batch of the mixed set of
    ceil(n_mixed / steps) events (labels, balanced weights), as the project's training pairs
    them, reshuffled every epoch."""
    import polars as pl  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    mixed = pl.read_parquet(
        config.output_dir / "datasets" / f"mixed_train_{config.training_operator}.parquet"
    )
    x_mix = prep.transform(mixed)
    labels = mixed["label"].to_numpy().astype("float32")
    weights = _balanced_weights(labels, mixed["yield"].to_numpy())
    steps = math.ceil(n_train / 32)
    mix_batch = math.ceil(len(x_mix) / steps)
    sm = tf.data.Dataset.from_tensor_slices(x_train).shuffle(n_train, seed=seed).batch(32)
    mix = (
        tf.data.Dataset.from_tensor_slices((x_mix, labels, weights))
        .shuffle(len(x_mix), seed=seed + 1)
        .repeat()
        .batch(mix_batch)
    )
    return tf.data.Dataset.zip(sm, mix).prefetch(tf.data.AUTOTUNE)


def run_keras_fit(config: Any, epochs: int, kind: str = "vae") -> dict[str, Any]:
    """The paper's recipe: keras Model.fit, batch 32, Adam 5e-4, shuffled every epoch; for
    "vae_nn" the VAE loss plus the classifier's weighted BCE on paired mixed batches
    (`vae_nn_loss`). The validation loss is the VAE loss on the SM validation set for both
    kinds, as in the project's training."""
    import keras  # noqa: PLC0415
    import polars as pl  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from vbsad_batch.models.networks import build_model, vae_loss, vae_nn_loss  # noqa: PLC0415
    from vbsad_batch.models.preprocessing import Preprocessing  # noqa: PLC0415

    datasets = config.output_dir / "datasets"
    sm_train = pl.read_parquet(datasets / "sm_train.parquet")
    prep = Preprocessing.fit(sm_train, config.features, config.log_features)
    x_train = prep.transform(sm_train)
    x_val = prep.transform(pl.read_parquet(datasets / "sm_validation.parquet"))
    training = dataclasses.replace(config.training, batch_size=32, learning_rate=5e-4)
    keras.utils.set_random_seed(training.seed)
    vae = build_model(kind, x_train.shape[1], training)
    beta = training.beta
    bce_weight = training.bce_weight

    class FitVAE(keras.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.vae = vae
            self.tracker = keras.metrics.Mean(name="vae_loss")

        @property
        def metrics(self) -> list[Any]:
            return [self.tracker]

        def call(self, x: Any, training: bool = False) -> Any:
            return self.vae(x, training=training)

        def train_step(self, data: Any) -> dict[str, Any]:
            with tf.GradientTape() as tape:
                if kind == "vae_nn":
                    x, (x_mix, labels, weights) = data
                    loss = vae_nn_loss(self.vae, x, x_mix, labels, weights, True, beta, bce_weight)
                else:
                    x = data[0] if isinstance(data, tuple) else data
                    loss = vae_loss(self.vae, x, True, beta)
            grads = tape.gradient(loss, self.vae.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.vae.trainable_variables, strict=True))
            self.tracker.update_state(loss)
            return {"vae_loss": self.tracker.result()}

        def test_step(self, data: Any) -> dict[str, Any]:
            x = data[0] if isinstance(data, tuple) else data
            self.tracker.update_state(vae_loss(self.vae, x, False, beta))
            return {"vae_loss": self.tracker.result()}

    class Timer(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self.val_loss: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_test_begin(self, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.val_loss.append(float(logs["val_vae_loss"]))

    model = FitVAE()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=5e-4))
    timer = Timer()
    # The paper's early stopping on the validation loss, best weights kept (at the end of fit
    # also when it did not stop early). After the timer: its restore is not training time.
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_vae_loss", mode="min", patience=training.patience, restore_best_weights=True
    )
    if kind == "vae_nn":
        pairs = _mixed_pairs(config, prep, len(x_train), x_train, training.seed)
        validation = tf.data.Dataset.from_tensors(x_val)
        model.fit(
            pairs,
            epochs=epochs,
            shuffle=False,  # the dataset reshuffles every epoch itself
            validation_data=validation,
            callbacks=[timer, stopping],
            verbose=0,
        )
    else:
        model.fit(
            x_train,
            batch_size=32,
            epochs=epochs,
            shuffle=True,
            validation_data=(x_val,),
            validation_batch_size=len(x_val),
            callbacks=[timer, stopping],
            verbose=0,
        )
    return {
        "seconds": timer.seconds,
        "val_loss": timer.val_loss,
        "n_train": len(x_train),
        "model": vae,
        "preprocessing": prep,
    }


def steady_rate(n_train: int, seconds: list[float]) -> float:
    steady = seconds[1:] or seconds
    return n_train * len(steady) / sum(steady)


def print_sensitivity(config: Any, pairs: list[tuple[Path, Path, str]]) -> None:
    """Score and scan all models in one scan; per (ours, fit, score column) pair and operator
    the smallest |c| at the scan's significance of each and their ratio."""
    from sensitivity_comparison import compare_sensitivity, paired_ratio  # noqa: PLC0415

    start = time.perf_counter()
    models = [d for ours, fit, _ in pairs for d in (ours, fit)]
    document, limits = compare_sensitivity(config, models)
    z = document["significance"]
    replicas = document["bootstrap"]["replicas"]
    print(
        f"sensitivity (vbsad score + vbsad scan of all models, then the paired bootstrap): "
        f"smallest |c| at {z:g} sigma (proxy, the paper's Table 1) +- its bootstrap sd "
        f"({replicas} replicas); ratio vbsad / fit (<= 1: no worse) and, over the same "
        "replicas for both models, the paired ratio mean +- sd and the fraction of replicas "
        "with ratio <= 1"
    )
    worse = []
    for ours, fit, column in pairs:
        print(f" {ours.name} vs {fit.name}, score {column}:")
        for op in document["operators"]:
            c_ours, e_ours = limits[ours.name][op].smallest
            c_fit, e_fit = limits[fit.name][op].smallest
            ratio = c_ours / c_fit if math.isfinite(c_fit) and c_fit > 0 else math.nan
            mean, spread, no_worse = paired_ratio(config, ours, fit, op, column)
            print(
                f"  {op:>6}: fit {c_fit:.4g} +- {_fmt(e_fit)}, vbsad {c_ours:.4g} +- "
                f"{_fmt(e_ours)}, ratio {ratio:.3f}; paired {mean:.3f} +- {spread:.3f}, "
                f"<= 1 in {no_worse:.0%}"
            )
            if not ratio <= 1.0 + 2.0 * spread:
                worse.append(f"{ours.name}:{op}")
    print(f"(sensitivity part: {time.perf_counter() - start:.0f} s)")
    verdict = (
        f"worse by more than 2 paired sd on {', '.join(worse)}"
        if worse
        else "no operator worse by more than 2 paired sd"
    )
    print(f"sensitivity vbsad vs fit: {verdict}")


def _fmt(error: float | None) -> str:
    return "n/a" if error is None else f"{error:.2g}"


def compare_training(config: Any, kind: str, args: Any) -> tuple[Path, Path]:
    """Train `kind` both ways, print throughput and time to the common validation loss;
    return the model directories (ours, the fit reference's)."""
    from sensitivity_comparison import write_model_directory  # noqa: PLC0415

    fit = run_keras_fit(config, args.fit_epochs, kind)
    n_train = fit["n_train"]
    ours = run_project(config, args.batch_size, args.learning_rate, args.epochs, kind)
    fit_rate = steady_rate(n_train, fit["seconds"])
    our_rate = steady_rate(n_train, ours["seconds"])
    target = max(min(fit["val_loss"]), min(ours["val_loss"]))
    t_fit = first_time_below(fit["seconds"], fit["val_loss"], target)
    t_ours = first_time_below(ours["seconds"], ours["val_loss"], target)
    print(f"{kind}: SM training events: {n_train}")
    print(
        f"{kind}: keras fit, batch 32, Adam 5e-4: {len(fit['seconds'])} epochs, "
        f"{fit_rate:,.0f} events/s, best val_loss {min(fit['val_loss']):.5g}"
    )
    print(
        f"{kind}: vbsad train, batch {args.batch_size}, Adam {args.learning_rate:g}: "
        f"{len(ours['seconds'])} epochs, {our_rate:,.0f} events/s, "
        f"best val_loss {min(ours['val_loss']):.5g}"
    )
    print(f"{kind}: throughput ratio (vbsad / fit): {our_rate / fit_rate:.1f}x")
    print(
        f"{kind}: time to val_loss <= {target:.5g} (training only): fit {t_fit:.2f} s, "
        f"vbsad {t_ours:.2f} s, ratio {t_fit / t_ours:.1f}x"
    )
    fit_dir = ours["model_dir"].parent / f"keras_fit_{ours['model_dir'].name}"
    return ours["model_dir"], write_model_directory(fit["model"], fit["preprocessing"], fit_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run: 30k events, 2 epochs")
    parser.add_argument("--events", type=int, default=None, help="generated events (100000)")
    parser.add_argument("--fit-epochs", type=int, default=None, help="model.fit epochs (8)")
    parser.add_argument("--epochs", type=int, default=None, help="project epochs (150)")
    parser.add_argument("--batch-size", type=int, default=2048, help="project batch (2048)")
    parser.add_argument(
        "--learning-rate", type=float, default=0.007, help="project Adam step (0.007)"
    )
    parser.add_argument(
        "--vae-nn", action="store_true", help="also train, time and scan the VAE+NN both ways"
    )
    parser.add_argument(
        "--no-sensitivity",
        action="store_true",
        help="skip scoring and scanning the test datasets with the models",
    )
    args = parser.parse_args()
    n_events = args.events or (30_000 if args.quick else 100_000)
    args.fit_epochs = args.fit_epochs or (2 if args.quick else 8)
    args.epochs = args.epochs or (60 if args.quick else 150)

    with tempfile.TemporaryDirectory(prefix="vbsad-bench-train-") as tmp:
        start = time.perf_counter()
        config = make_config(Path(tmp), n_events)
        print(f"data: {n_events} demo events -> datasets in {time.perf_counter() - start:.1f} s")
        pairs = [(*compare_training(config, "vae", args), "mse")]
        if args.vae_nn:
            pairs.append((*compare_training(config, "vae_nn", args), "score"))
        if not args.no_sensitivity:
            print_sensitivity(config, pairs)


if __name__ == "__main__":
    main()
