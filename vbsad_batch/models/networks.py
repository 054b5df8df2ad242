"""The models of the reference paper in TensorFlow: VAE, VAE+NN, losses, scores.

Their inputs are preprocessed by `vbsad_batch.models.preprocessing.Preprocessing` (log10 of the
energy-like features, min-max scaling fitted on the SM training split).

- `build_model("vae", ...)`: a variational autoencoder. Encoder: Dense layers of
  `training.hidden_layers` widths (20-10-7), each followed by LeakyReLU, then two Dense heads
  `z_mean` and `z_log_var` of size `training.latent_dim`; reparameterisation
  z = z_mean + exp(z_log_var / 2) * eps, eps ~ N(0, 1); decoder: the hidden widths reversed
  (7-10-20) with LeakyReLU, then a linear Dense layer back to the features.
- `build_model("vae_nn", ...)`: the same VAE plus a classifier on the per-event (MSE, KLD):
  Dense(`classifier_units`, linear), then Dense(1, hard sigmoid). One end-to-end model: the
  classifier's binary cross-entropy also trains the VAE.

Per-event losses (the anomaly scores), for inputs x (preprocessed, dimensionless):
``mse = mean_features (x - x_hat)^2`` and
``kld = -0.5 * sum_latent (1 + z_log_var - z_mean^2 - exp(z_log_var))`` (nats).
In training mode (`training=True`) the decoder sees a sampled z; in inference mode it sees
z_mean, so scores are deterministic: equal inputs and weights give equal scores.

Data-parallel training (`vbsad_batch.models.data_parallel`) splits each global batch over MPI
ranks. For it to make the step of a 1-rank training, two things are exact here: the sampling noise
(`noise_rows`: a rank draws the noise of the whole global batch and keeps its rows, so every event
gets the noise it gets in one process) and the loss (`vae_loss_share`, `vae_nn_loss_share`: a
rank's part of the global batch's loss, normalised by the global batch's event count and weights,
so that the parts of all ranks sum to `vae_loss` / `vae_nn_loss` of the whole batch).

The Keras layers and the model are registered for Keras serialisation (package "vbsad_batch"):
`save_model` writes one `.keras` file that `load_model` reads back into a model with identical
scores, and beside it `network.npz`, the dense layers as arrays, which scoring and the report
evaluate in NumPy (`vbsad_batch.models.numpy_networks`). Only this module and the modules that
train import TensorFlow.
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import keras
import numpy as np
import tensorflow as tf

from vbsad_batch.config import ModelKind
from vbsad_batch.models.network_export import network_bytes, network_weights
from vbsad_batch.models.paths import MODEL_FILE_NAME, NETWORK_FILE_NAME
from vbsad_batch.runtime.atomic_write import write_bytes_atomic

if TYPE_CHECKING:
    from vbsad_batch.config import TrainingConfig

__all__ = [
    "BCE_EPSILON",
    "ModelKind",
    "NoiseRows",
    "Sampling",
    "VariationalAutoencoder",
    "binary_cross_entropy",
    "build_model",
    "classifier_score",
    "load_model",
    "per_event_losses",
    "save_model",
    "scores",
    "vae_loss",
    "vae_loss_share",
    "vae_nn_loss",
    "vae_nn_loss_share",
    "weight_normaliser",
]


BCE_EPSILON = 1e-7
"""Classifier outputs are clipped to [eps, 1 - eps] in the binary cross-entropy (as Keras does):
the hard sigmoid reaches exactly 0 and 1."""

NoiseRows = tuple[Any, Any]
"""(offset, total) as int32 scalars (tensors or ints): a batch of n events that is rows
offset..offset+n-1 of a global batch of `total` events (data-parallel training)."""

_NUMPY2_COPY_WARNING = r"__array__ implementation doesn't accept a copy keyword"
_SERIALIZATION_PACKAGE = "vbsad_batch"


# --- layers and model ------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class Sampling(keras.layers.Layer):  # type: ignore[misc]  # keras is untyped
    """Reparameterisation: (z_mean, z_log_var) -> z_mean + exp(z_log_var / 2) * eps.

    In inference mode (`training` false) it returns z_mean. The noise eps is drawn with
    TensorFlow's stateless normal generator from `rng_state`, a non-trainable int64 weight
    (initially (seed, 0)) whose second component is incremented at every training call. Being
    a weight, the state is saved with the model and restored with it (also by
    `save_weights` / `load_weights` and by `tf.train.Checkpoint`), so that training resumed
    from a checkpoint draws the same noise as an uninterrupted run.

    With `noise_rows` = (offset, total) (a rank's share of a data-parallel global batch), the
    noise of the whole global batch (total, latent) is drawn and rows offset..offset+n-1 are
    used: the very numbers that the events get in a 1-rank training of the global batch.
    """

    def __init__(self, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = int(seed)
        self.rng_state: Any = None

    def build(self, input_shape: Any = None) -> None:
        seed = self.seed

        def initial_state(shape: Any, dtype: Any = None) -> Any:
            return tf.constant([seed, 0], dtype=tf.int64)

        self.rng_state = self.add_weight(
            shape=(2,), dtype="int64", initializer=initial_state, trainable=False, name="rng_state"
        )
        self.built = True

    def call(
        self,
        inputs: Sequence[Any],
        training: bool | None = None,
        noise_rows: NoiseRows | None = None,
    ) -> Any:
        z_mean, z_log_var = inputs
        if not training:
            return z_mean
        seed = tf.convert_to_tensor(self.rng_state)
        shape = tf.shape(z_mean)
        if noise_rows is None:
            eps = tf.random.stateless_normal(shape, seed=seed, dtype=z_mean.dtype)
        else:
            offset, total = (tf.cast(v, tf.int32) for v in noise_rows)
            full = tf.random.stateless_normal(
                tf.stack([total, shape[1]]), seed=seed, dtype=z_mean.dtype
            )
            eps = full[offset : offset + shape[0]]
        self.rng_state.assign_add(tf.constant([0, 1], dtype=tf.int64))
        return z_mean + tf.exp(0.5 * z_log_var) * eps

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config["seed"] = self.seed
        return config


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class VariationalAutoencoder(keras.Model):  # type: ignore[misc]  # keras is untyped
    """The VAE, and with `classifier_units` the VAE+NN (see the module docstring).

    Calling it on a float32 batch (n, n_features) returns a dict of tensors: "z_mean",
    "z_log_var" (n, latent_dim), "reconstruction" (n, n_features), "mse", "kld" (n,), and for
    the VAE+NN "score" (n,), the classifier output in [0, 1].

    Args:
        n_features: number of inputs.
        hidden_layers: encoder widths, input side first.
        latent_dim: latent size.
        leaky_relu_alpha: negative slope of the LeakyReLU activations.
        classifier_units: width of the classifier's linear layer; None: plain VAE.
        seed: seeds of the weight initialisers (seed, seed + 1, ... per layer) and of the
            sampling noise.
    """

    def __init__(
        self,
        n_features: int,
        *,
        hidden_layers: Sequence[int] = (20, 10, 7),
        latent_dim: int = 3,
        leaky_relu_alpha: float = 0.3,
        classifier_units: int | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n_features = int(n_features)
        self.hidden_layers = tuple(int(w) for w in hidden_layers)
        self.latent_dim = int(latent_dim)
        self.leaky_relu_alpha = float(leaky_relu_alpha)
        self.classifier_units = None if classifier_units is None else int(classifier_units)
        self.seed = int(seed)
        if self.n_features < 1 or self.latent_dim < 1 or not self.hidden_layers:
            raise ValueError("need n_features >= 1, latent_dim >= 1 and some hidden layers")
        seeds = iter(range(self.seed, self.seed + 1000))

        def dense(units: int, name: str, activation: str | None = None) -> Any:
            return keras.layers.Dense(
                units,
                activation=activation,
                kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
                name=name,
            )

        def leaky(name: str) -> Any:
            return keras.layers.LeakyReLU(negative_slope=self.leaky_relu_alpha, name=name)

        encoder: list[Any] = []
        for i, width in enumerate(self.hidden_layers):
            encoder += [dense(width, f"encoder_dense_{i}"), leaky(f"encoder_act_{i}")]
        self.encoder_layers = encoder
        self.z_mean_layer = dense(self.latent_dim, "z_mean")
        self.z_log_var_layer = dense(self.latent_dim, "z_log_var")
        self.sampling = Sampling(self.seed, name="sampling")
        decoder: list[Any] = []
        for i, width in enumerate(reversed(self.hidden_layers)):
            decoder += [dense(width, f"decoder_dense_{i}"), leaky(f"decoder_act_{i}")]
        decoder.append(dense(self.n_features, "reconstruction"))
        self.decoder_layers = decoder
        self.classifier_layers: list[Any] = []
        if self.classifier_units is not None:
            self.classifier_layers = [
                dense(self.classifier_units, "classifier_dense"),
                dense(1, "classifier_output", activation="hard_sigmoid"),
            ]

    @property
    def kind(self) -> ModelKind:
        """ "vae_nn" with a classifier, "vae" otherwise."""
        return "vae" if self.classifier_units is None else "vae_nn"

    def build(self, input_shape: Any = None) -> None:
        """Create every weight (inputs of shape (batch, n_features))."""
        shape: tuple[int | None, ...] = (None, self.n_features)
        for layer in self.encoder_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.z_mean_layer.build(shape)
        self.z_log_var_layer.build(shape)
        shape = (None, self.latent_dim)
        for layer in self.decoder_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        shape = (None, 2)
        for layer in self.classifier_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.sampling.build(((None, self.latent_dim), (None, self.latent_dim)))
        self.built = True

    def encode(self, x: Any) -> tuple[Any, Any]:
        """(z_mean, z_log_var) of a batch."""
        h = x
        for layer in self.encoder_layers:
            h = layer(h)
        return self.z_mean_layer(h), self.z_log_var_layer(h)

    def decode(self, z: Any) -> Any:
        """The reconstruction of latent points z."""
        h = z
        for layer in self.decoder_layers:
            h = layer(h)
        return h

    def classify(self, mse: Any, kld: Any) -> Any:
        """Classifier output (n,) in [0, 1] for per-event (mse, kld) of shape (n,)."""
        if not self.classifier_layers:
            raise ValueError("this model is a plain VAE: it has no classifier")
        h = tf.stack([mse, kld], axis=1)
        for layer in self.classifier_layers:
            h = layer(h)
        return tf.squeeze(h, axis=1)

    def call(
        self, inputs: Any, training: bool | None = None, noise_rows: NoiseRows | None = None
    ) -> dict[str, Any]:
        x = tf.convert_to_tensor(inputs, dtype=tf.float32)
        z_mean, z_log_var = self.encode(x)
        if noise_rows is None:
            z = self.sampling((z_mean, z_log_var), training=training)
        else:  # a rank's rows of a data-parallel global batch (see `Sampling`)
            z = self.sampling((z_mean, z_log_var), training=training, noise_rows=noise_rows)
        reconstruction = self.decode(z)
        mse = tf.reduce_mean(tf.square(x - reconstruction), axis=1)
        kld = -0.5 * tf.reduce_sum(1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=1)
        out = {
            "z_mean": z_mean,
            "z_log_var": z_log_var,
            "reconstruction": reconstruction,
            "mse": mse,
            "kld": kld,
        }
        if self.classifier_layers:
            out["score"] = self.classify(mse, kld)
        return out

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            n_features=self.n_features,
            hidden_layers=list(self.hidden_layers),
            latent_dim=self.latent_dim,
            leaky_relu_alpha=self.leaky_relu_alpha,
            classifier_units=self.classifier_units,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> VariationalAutoencoder:
        return cls(**config)


def build_model(kind: ModelKind, n_features: int, training: TrainingConfig) -> Any:
    """A new, built (weights initialised from `training.seed`) VAE or VAE+NN.

    Args:
        kind: "vae" or "vae_nn".
        n_features: number of model inputs.
        training: layer sizes, latent size, LeakyReLU slope, classifier width, seed.

    Returns:
        a `VariationalAutoencoder` (a `keras.Model`).
    """
    if kind not in get_args(ModelKind):
        raise ValueError(f"unknown model kind {kind!r}; one of {', '.join(get_args(ModelKind))}")
    model = VariationalAutoencoder(
        n_features=n_features,
        hidden_layers=training.hidden_layers,
        latent_dim=training.latent_dim,
        leaky_relu_alpha=training.leaky_relu_alpha,
        classifier_units=training.classifier_units if kind == "vae_nn" else None,
        seed=training.seed,
        name=kind,
    )
    model.build((None, n_features))
    return model


# --- losses ----------------------------------------------------------------------------------


def per_event_losses(
    model: Any, x: Any, training: bool, noise_rows: NoiseRows | None = None
) -> tuple[Any, Any]:
    """Per-event (mse, kld), each of shape (n,), of a batch x (n, n_features) of model inputs.

    mse: mean over the features of (x - x_hat)^2 (x dimensionless, in [0, 1] for SM training
    events); kld: KL divergence of the encoder's Gaussian from N(0, 1), nats. `noise_rows`: x is
    a rank's share of a data-parallel global batch (see `Sampling`).
    """
    if noise_rows is None:
        out = model(x, training=training)
    else:
        out = model(x, training=training, noise_rows=noise_rows)
    return out["mse"], out["kld"]


def classifier_score(model: Any, mse: Any, kld: Any) -> Any:
    """The VAE+NN classifier's output (n,) in [0, 1] for per-event (mse, kld) of shape (n,).

    Raises:
        ValueError: the model is a plain VAE.
    """
    return model.classify(mse, kld)


def weight_normaliser(weights: Any) -> Any:
    """The denominator of a weighted mean over a batch: sum |w| (at least 1e-30). Absolute
    values: LIN yields can be negative and must not cancel the normalisation."""
    return tf.maximum(tf.reduce_sum(tf.abs(weights)), 1e-30)


def _weighted_mean(values: Any, weights: Any | None) -> Any:
    if weights is None:
        return tf.reduce_mean(values)
    w = tf.cast(weights, values.dtype)
    return tf.reduce_sum(w * values) / weight_normaliser(w)


def binary_cross_entropy(model: Any, mse: Any, kld: Any, labels: Any) -> Any:
    """Per-event binary cross-entropy (n,) of the VAE+NN classifier on per-event (mse, kld),
    labels 0 (SM) / 1 (EFT); outputs clipped to [BCE_EPSILON, 1 - BCE_EPSILON]."""
    p = tf.clip_by_value(classifier_score(model, mse, kld), BCE_EPSILON, 1.0 - BCE_EPSILON)
    y = tf.cast(labels, p.dtype)
    return -(y * tf.math.log(p) + (1.0 - y) * tf.math.log(1.0 - p))


def vae_loss(
    model: Any, x_sm: Any, training: bool, beta: float, *, weights: Any | None = None
) -> Any:
    """The VAE loss of a batch of SM events: mean of mse + beta * kld (a scalar tensor).

    Args:
        model: a `VariationalAutoencoder`.
        x_sm: SM model inputs (n, n_features).
        training: sample z (True) or use z_mean (False).
        beta: weight of the KL divergence.
        weights: optional per-event weights (n,) (e.g. yields): the mean becomes
            sum(w * loss) / sum(|w|).
    """
    mse, kld = per_event_losses(model, x_sm, training)
    return _weighted_mean(mse + beta * kld, weights)


def vae_nn_loss(  # noqa: PLR0917 - the positional order is the documented API
    model: Any,
    x_sm: Any,
    x_mix: Any,
    labels: Any,
    weights: Any | None,
    training: bool,
    beta: float,
    bce_weight: float,
) -> Any:
    """The VAE+NN loss: `vae_loss` on an SM batch plus bce_weight times the classifier's
    binary cross-entropy on a mixed SM+EFT batch.

    Args:
        model: a VAE+NN `VariationalAutoencoder`.
        x_sm: SM model inputs (n, n_features) for the VAE loss.
        x_mix: mixed model inputs (m, n_features) for the classifier.
        labels: (m,) 0 for SM, 1 for EFT.
        weights: (m,) per-event weights of the mixed batch (e.g. yields; LIN ones can be
            negative), or None: the BCE is sum(w * bce) / sum(|w|).
        training: sample z (True) or use z_mean (False).
        beta: weight of the KL divergence.
        bce_weight: weight of the binary cross-entropy.
    """
    reconstruction_loss = vae_loss(model, x_sm, training, beta)
    mse, kld = per_event_losses(model, x_mix, training)
    bce = binary_cross_entropy(model, mse, kld, labels)
    return reconstruction_loss + bce_weight * _weighted_mean(bce, weights)


def vae_loss_share(
    model: Any, x_sm: Any, rows: NoiseRows, n_global: Any, *, beta: float, training: bool = True
) -> Any:
    """A rank's part of the `vae_loss` of a data-parallel global batch of SM events:
    sum over its events of (mse + beta * kld), divided by the global batch's event count. The
    parts of all ranks sum to `vae_loss` of the global batch, and so do their gradients.

    Args:
        model: a `VariationalAutoencoder`.
        x_sm: this rank's SM events (n, n_features).
        rows: (offset, total): x_sm is rows offset..offset+n-1 of the global batch of `total`
            events (selects their sampling noise).
        n_global: number of events of the global batch (float32 scalar).
        beta: weight of the KL divergence.
        training: sample z (True) or use z_mean (False).
    """
    mse, kld = per_event_losses(model, x_sm, training, noise_rows=rows)
    return tf.reduce_sum(mse + beta * kld) / n_global


def vae_nn_loss_share(
    model: Any,
    x_sm: Any,
    sm_rows: NoiseRows,
    n_sm: Any,
    *,
    mixed: tuple[Any, Any, Any],
    mix_rows: NoiseRows,
    mix_normaliser: Any,
    beta: float,
    bce_weight: float,
    training: bool = True,
) -> Any:
    """A rank's part of the `vae_nn_loss` of a data-parallel global batch: its `vae_loss_share`
    plus bce_weight times sum over its mixed events of w * bce divided by the GLOBAL mixed
    batch's `weight_normaliser` (sum |w| over every rank's events: the class-balanced weights'
    normalisation is per global batch, as in one process). The parts of all ranks sum to
    `vae_nn_loss` of the global batches (the SM sampling noise is drawn before the mixed one,
    as there).

    Args:
        model: a VAE+NN `VariationalAutoencoder`.
        x_sm, sm_rows, n_sm: this rank's SM events, their rows in the global SM batch and its
            event count (see `vae_loss_share`).
        mixed: this rank's mixed events (inputs, labels, weights).
        mix_rows: their rows (offset, total) in the global mixed batch.
        mix_normaliser: `weight_normaliser` of the global mixed batch's weights.
        beta: weight of the KL divergence.
        bce_weight: weight of the binary cross-entropy.
        training: sample z (True) or use z_mean (False).
    """
    x_mix, labels, weights = mixed
    reconstruction = vae_loss_share(model, x_sm, sm_rows, n_sm, beta=beta, training=training)
    mse, kld = per_event_losses(model, x_mix, training, noise_rows=mix_rows)
    bce = binary_cross_entropy(model, mse, kld, labels)
    w = tf.cast(weights, bce.dtype)
    return reconstruction + bce_weight * (tf.reduce_sum(w * bce) / mix_normaliser)


# --- inference, saving -----------------------------------------------------------------------


_FORWARD: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""model -> its compiled inference function (traced once per model, not once per call)."""


def _forward_function(model: Any, names: Sequence[str]) -> Any:
    def forward(batch: Any) -> tuple[Any, ...]:
        out = model(batch, training=False)
        return tuple(out[name] for name in names)

    signature = [tf.TensorSpec((None, model.n_features), tf.float32)]
    return tf.function(forward, input_signature=signature)


def scores(model: Any, x: np.ndarray, *, batch_size: int = 65536) -> dict[str, np.ndarray]:
    """Per-event anomaly scores in inference mode: "mse", "kld" and for VAE+NN "score".

    Args:
        model: a `VariationalAutoencoder`.
        x: model inputs (n, n_features) (`Preprocessing.transform`).
        batch_size: events per forward pass (memory ~ batch_size * 100 floats).

    Returns:
        float32 arrays of shape (n,). Equal inputs, weights and `batch_size` give bit-equal
        results; another `batch_size` may change the last bit (oneDNN blocks matrix products
        by batch size).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != model.n_features:
        raise ValueError(f"expected inputs of shape (n, {model.n_features}), got {x.shape}")
    names = ["mse", "kld"] + (["score"] if model.kind == "vae_nn" else [])
    forward = _FORWARD.get(model)
    if forward is None:
        forward = _forward_function(model, names)
        _FORWARD[model] = forward
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, x.shape[0], batch_size):
        for name, value in zip(names, forward(x[start : start + batch_size]), strict=True):
            parts[name].append(value.numpy())
    return {
        name: np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        for name, chunks in parts.items()
    }


def save_model(model: Any, directory: Path) -> Path:
    """Write `model` to `<directory>/model.keras` and its dense layers to
    `<directory>/network.npz` (`vbsad_batch.models.network_export`: what scoring and the report
    evaluate without TensorFlow), each atomically; return the path of the Keras file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(directory / NETWORK_FILE_NAME, network_bytes(network_weights(model)))
    dest = directory / MODEL_FILE_NAME
    # Keras insists on a ".keras" file name; the model is small: write it to a scratch
    # directory, then move its bytes into place atomically.
    with tempfile.TemporaryDirectory(prefix="vbsad-model-") as scratch:
        path = Path(scratch) / MODEL_FILE_NAME
        with _quiet_numpy2_copy_warning():
            keras.saving.save_model(model, path)
        write_bytes_atomic(dest, path.read_bytes())
    return dest


def load_model(directory: Path) -> Any:
    """Read the model that `save_model` wrote into `directory` (not compiled)."""
    path = Path(directory) / MODEL_FILE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no model file {path}")
    with _quiet_numpy2_copy_warning():
        return keras.saving.load_model(path, compile=False)


@contextlib.contextmanager
def _quiet_numpy2_copy_warning() -> Iterator[None]:
    """Keras' variable-to-numpy conversion triggers NumPy 2's DeprecationWarning about
    `__array__` without a `copy` keyword (a TensorFlow/NumPy interface detail, harmless)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NUMPY2_COPY_WARNING, category=DeprecationWarning)
        yield
