"""The trained VAE and VAE+NN evaluated with NumPy: per-event scores and reconstructions
without TensorFlow.

`load_network(model_dir)` reads `network.npz` (`vbsad_batch.models.network_export`), written
next to the Keras model when it is saved, and returns a `NumpyNetwork` that computes what the
Keras model computes in inference mode (`vbsad_batch.models.networks`), for model inputs x
(preprocessed, dimensionless):

- encoder: the hidden Dense layers with LeakyReLU, then z_mean and z_log_var (linear);
- decoder of z_mean (inference mode: no sampling, so the scores are deterministic), the last
  layer linear: the reconstruction x_hat;
- ``mse = mean_features (x - x_hat)^2``;
- ``kld = -0.5 * sum_latent (1 + z_log_var - z_mean^2 - exp(z_log_var))`` (nats);
- VAE+NN: the classifier on (mse, kld): Dense (linear), then Dense(1) with the hard sigmoid
  ``clip(t + 3, 0, 6) / 6``: the score in [0, 1].

Arithmetic: float64 from the float32 inputs and weights, results rounded to float32 at the end,
so they are TensorFlow's float32 results up to TensorFlow's own rounding (relative differences
of ~1e-6, tested on trained models). A row's results do not depend on the other rows of its
batch, so any batch size gives the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vbsad_batch.models.network_export import DenseLayer, NetworkWeights, read_network
from vbsad_batch.models.paths import NETWORK_FILE_NAME

__all__ = ["SCORE_BATCH", "NumpyNetwork", "load_network"]

SCORE_BATCH = 1024
"""Events per forward pass in `NumpyNetwork.scores`. Small on purpose: OpenBLAS computes a
matrix product this thin (1024 x 20 x 20) on one thread, where a larger one would be shared
between threads that wait for each other at every product, which a busy node makes ~20 times
slower; and a 1024-event pass stays in the CPU's cache (~300 kB)."""


@dataclass(frozen=True)
class _Layer:
    kernel: np.ndarray  # float64 (n_in, n_out)
    bias: np.ndarray  # float64 (n_out,)
    activation: str


def _layers(layers: tuple[DenseLayer, ...]) -> tuple[_Layer, ...]:
    return tuple(
        _Layer(
            layer.kernel.astype(np.float64), layer.bias.astype(np.float64), str(layer.activation)
        )
        for layer in layers
    )


class NumpyNetwork:
    """A trained VAE or VAE+NN in inference mode, in NumPy (see the module docstring).

    Args:
        weights: the network's layers (`network_export.network_weights` or `read_network`).
    """

    def __init__(self, weights: NetworkWeights) -> None:
        self.weights = weights
        self.kind = weights.kind
        self.n_features = weights.n_features
        self._alpha = float(weights.leaky_relu_alpha)
        self._encoder = _layers(weights.encoder)
        self._z_mean = _layers((weights.z_mean,))
        self._z_log_var = _layers((weights.z_log_var,))
        self._decoder = _layers(weights.decoder)
        self._classifier = _layers(weights.classifier)

    def _apply(self, layers: tuple[_Layer, ...], h: np.ndarray) -> np.ndarray:
        for layer in layers:
            h = h @ layer.kernel
            h += layer.bias
            if layer.activation == "leaky_relu":
                # max(x, alpha x) is LeakyReLU for a slope in [0, 1] (as TensorFlow computes it)
                if self._alpha <= 1:
                    np.maximum(h, h * self._alpha, out=h)
                else:
                    h = np.where(h >= 0, h, self._alpha * h)
            elif layer.activation == "hard_sigmoid":
                h += 3.0
                np.clip(h, 0.0, 6.0, out=h)
                h /= 6.0
        return h

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected inputs of shape (n, {self.n_features}), got {x.shape}")
        # float32 first: the model's input precision (TensorFlow casts its inputs so too)
        return x.astype(np.float32, copy=False).astype(np.float64)

    def forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Everything the Keras model returns in inference mode, as float64 arrays: "z_mean",
        "z_log_var" (n, latent_dim), "reconstruction" (n, n_features), "mse", "kld" (n,) and
        for a VAE+NN "score" (n,).

        Args:
            x: model inputs (n, n_features) (`Preprocessing.transform`); taken as float32.
        """
        x64 = self._inputs(x)
        h = self._apply(self._encoder, x64)
        z_mean = self._apply(self._z_mean, h)
        z_log_var = self._apply(self._z_log_var, h)
        reconstruction = self._apply(self._decoder, z_mean)
        error = x64 - reconstruction
        error *= error
        mse = error.mean(axis=1)
        terms = 1.0 + z_log_var
        terms -= np.square(z_mean)
        terms -= np.exp(z_log_var)
        kld = terms.sum(axis=1)
        kld *= -0.5
        out = {
            "z_mean": z_mean,
            "z_log_var": z_log_var,
            "reconstruction": reconstruction,
            "mse": mse,
            "kld": kld,
        }
        if self._classifier:
            out["score"] = self._apply(self._classifier, np.stack([mse, kld], axis=1))[:, 0]
        return out

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """The reconstruction (n, n_features) of model inputs x (decoder of z_mean), float64,
        computed `SCORE_BATCH` events at a time."""
        x64 = self._inputs(x)
        parts = [
            self._apply(self._decoder, self._apply(self._z_mean, self._apply(self._encoder, part)))
            for part in np.split(x64, range(SCORE_BATCH, len(x64), SCORE_BATCH))
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.n_features))

    def score_names(self) -> list[str]:
        """The per-event scores: "mse", "kld", and for a VAE+NN "score"."""
        return ["mse", "kld"] + (["score"] if self._classifier else [])

    def scores(self, x: np.ndarray, *, batch_size: int = SCORE_BATCH) -> dict[str, np.ndarray]:
        """Per-event anomaly scores (`score_names`), float32 arrays of shape (n,), computed
        `batch_size` events at a time, on one core (any batch size gives the same bits: a row's
        scores depend on that row only). Threads over the passes were measured slower: the
        passes are short enough for the GIL to be the bottleneck.

        Args:
            x: model inputs (n, n_features) (`Preprocessing.transform`).
            batch_size: events per forward pass (memory ~ batch_size * 100 float64).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected inputs of shape (n, {self.n_features}), got {x.shape}")
        names = self.score_names()
        result = {name: np.empty(x.shape[0], dtype=np.float32) for name in names}
        for start in range(0, x.shape[0], batch_size):
            out = self.forward(x[start : start + batch_size])
            for name in names:
                result[name][start : start + batch_size] = out[name]
        return result


def load_network(model_dir: Path) -> NumpyNetwork:
    """The network of a model directory (its `network.npz`).

    Raises:
        FileNotFoundError: the directory has no `network.npz` (a model saved before the export
            existed: train it again).
        ValueError: the file is damaged or of another format version.
    """
    path = Path(model_dir) / NETWORK_FILE_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing (a model saved before the NumPy export existed, or not by vbsad)"
        )
    return NumpyNetwork(read_network(path))
