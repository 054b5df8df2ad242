"""A trained network as plain arrays: the file `network.npz` that scoring and the report read
without TensorFlow.

`network_weights(model)` takes the dense layers of a trained `VariationalAutoencoder`
(`vbsad_batch.models.networks`) in the order the model applies them, each with its kernel, bias
and activation; `network_bytes` / `read_network` write and read them as one NumPy `.npz` file
(no pickled objects): the arrays `<layer name>.kernel` (n_in, n_out) and `<layer name>.bias`
(n_out,) as float32, exactly the values of the Keras weights, and `spec`, a JSON text with the
format version, the model kind, its sizes, the LeakyReLU slope and, per part of the network
("encoder", "z_mean", "z_log_var", "decoder", "classifier"), the layer names and activations in
order. The preprocessing is not repeated here: it stays in `preprocessing.json` beside it.

Activations: "linear" (none), "leaky_relu" (a Dense layer followed by a Keras LeakyReLU of the
model's slope) and "hard_sigmoid" (Keras' `relu6(x + 3) / 6`, the VAE+NN classifier's
output).

This module imports neither TensorFlow nor Keras: `network_weights` only calls methods of the
model object it is given.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from vbsad_batch.config import ModelKind

__all__ = [
    "NETWORK_FORMAT_VERSION",
    "Activation",
    "DenseLayer",
    "NetworkWeights",
    "network_bytes",
    "network_weights",
    "read_network",
]

NETWORK_FORMAT_VERSION = 1
"""Version of the `network.npz` layout; bump when it changes."""

Activation = Literal["linear", "leaky_relu", "hard_sigmoid"]
_SPEC = "spec"


@dataclass(frozen=True)
class DenseLayer:
    """One dense layer: activation(x @ kernel + bias).

    Attributes:
        name: the Keras layer's name.
        kernel: float32 (n_in, n_out).
        bias: float32 (n_out,).
        activation: what follows the affine map.
    """

    name: str
    kernel: np.ndarray
    bias: np.ndarray
    activation: Activation

    def __post_init__(self) -> None:
        if self.activation not in get_args(Activation):
            raise ValueError(f"layer {self.name}: unknown activation {self.activation!r}")
        if self.kernel.ndim != 2 or self.bias.shape != (self.kernel.shape[1],):
            raise ValueError(
                f"layer {self.name}: kernel {self.kernel.shape} and bias {self.bias.shape} "
                "do not fit together"
            )


@dataclass(frozen=True)
class NetworkWeights:
    """The dense layers of a VAE or VAE+NN, per part of the network, in order of application.

    Attributes:
        kind: "vae" or "vae_nn".
        n_features: number of inputs (preprocessed features).
        latent_dim: latent size.
        leaky_relu_alpha: negative slope of the "leaky_relu" activations.
        encoder: the hidden encoder layers, input side first.
        z_mean, z_log_var: the two latent heads (linear).
        decoder: the decoder layers, latent side first, the last one linear to n_features.
        classifier: VAE+NN only: the layers on the per-event (mse, kld), output last (one unit).
    """

    kind: ModelKind
    n_features: int
    latent_dim: int
    leaky_relu_alpha: float
    encoder: tuple[DenseLayer, ...]
    z_mean: DenseLayer
    z_log_var: DenseLayer
    decoder: tuple[DenseLayer, ...]
    classifier: tuple[DenseLayer, ...]

    def __post_init__(self) -> None:
        if self.kind not in get_args(ModelKind):
            raise ValueError(f"unknown model kind {self.kind!r}")
        if (self.kind == "vae_nn") != bool(self.classifier):
            raise ValueError(
                f"a {self.kind} model with {len(self.classifier)} classifier layer(s): a vae_nn "
                "has a classifier, a vae none"
            )
        _check_chain(self.encoder, self.n_features, "encoder")
        width = self.encoder[-1].kernel.shape[1] if self.encoder else self.n_features
        for head in (self.z_mean, self.z_log_var):
            _check_chain((head,), width, head.name, out=self.latent_dim)
        _check_chain(self.decoder, self.latent_dim, "decoder", out=self.n_features)
        if self.classifier:
            _check_chain(self.classifier, 2, "classifier", out=1)

    def parts(self) -> dict[str, tuple[DenseLayer, ...]]:
        """The layers per part of the network, in the file's order."""
        return {
            "encoder": self.encoder,
            "z_mean": (self.z_mean,),
            "z_log_var": (self.z_log_var,),
            "decoder": self.decoder,
            "classifier": self.classifier,
        }


def _check_chain(
    layers: Sequence[DenseLayer], n_in: int, what: str, *, out: int | None = None
) -> None:
    """The layers' shapes chain from `n_in` inputs (to `out` outputs)."""
    if not layers:
        raise ValueError(f"network {what}: no layers")
    width = n_in
    for layer in layers:
        if layer.kernel.shape[0] != width:
            raise ValueError(
                f"network {what}: layer {layer.name} takes {layer.kernel.shape[0]} inputs, "
                f"gets {width}"
            )
        width = layer.kernel.shape[1]
    if out is not None and width != out:
        raise ValueError(f"network {what}: {width} outputs, expected {out}")


# --- from a Keras model -----------------------------------------------------------------------


def _dense(layer: Any, activation: Activation) -> DenseLayer:
    kernel, bias = (np.array(w, dtype=np.float32) for w in layer.get_weights())
    return DenseLayer(str(layer.name), kernel, bias, activation)


def _keras_activation(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    return str(getattr(activation, "__name__", activation))


def _chain(layers: Sequence[Any], alpha: float) -> tuple[DenseLayer, ...]:
    """Dense layers, each optionally followed by a LeakyReLU of slope `alpha`, as DenseLayers."""
    result: list[DenseLayer] = []
    for layer in layers:
        kind = type(layer).__name__
        if kind == "LeakyReLU":
            slope = float(layer.negative_slope)
            if not result or result[-1].activation != "linear" or slope != alpha:
                raise ValueError(f"layer {layer.name}: a LeakyReLU that does not follow a Dense")
            last = result[-1]
            result[-1] = DenseLayer(last.name, last.kernel, last.bias, "leaky_relu")
        elif kind == "Dense":
            activation = _keras_activation(layer)
            if activation not in {"linear", "hard_sigmoid"}:
                raise ValueError(f"layer {layer.name}: activation {activation!r} not exported")
            result.append(_dense(layer, "linear" if activation == "linear" else "hard_sigmoid"))
        else:
            raise ValueError(f"layer {layer.name}: a {kind} cannot be exported")
    return tuple(result)


def network_weights(model: Any) -> NetworkWeights:
    """The dense layers of a built `VariationalAutoencoder` (its current weights).

    Raises:
        ValueError: the model has a layer or activation that the export does not know.
    """
    alpha = float(model.leaky_relu_alpha)
    return NetworkWeights(
        kind=model.kind,
        n_features=int(model.n_features),
        latent_dim=int(model.latent_dim),
        leaky_relu_alpha=alpha,
        encoder=_chain(model.encoder_layers, alpha),
        z_mean=_dense(model.z_mean_layer, "linear"),
        z_log_var=_dense(model.z_log_var_layer, "linear"),
        decoder=_chain(model.decoder_layers, alpha),
        classifier=_chain(model.classifier_layers, alpha),
    )


# --- the file ---------------------------------------------------------------------------------


def network_bytes(weights: NetworkWeights) -> bytes:
    """The `.npz` file of `weights` (see the module docstring)."""
    spec = {
        "format_version": NETWORK_FORMAT_VERSION,
        "kind": weights.kind,
        "n_features": weights.n_features,
        "latent_dim": weights.latent_dim,
        "leaky_relu_alpha": weights.leaky_relu_alpha,
        "layers": {
            part: [{"name": layer.name, "activation": layer.activation} for layer in layers]
            for part, layers in weights.parts().items()
        },
    }
    arrays: dict[str, np.ndarray] = {_SPEC: np.array(json.dumps(spec, sort_keys=True))}
    for layers in weights.parts().values():
        for layer in layers:
            arrays[f"{layer.name}.kernel"] = np.asarray(layer.kernel, dtype=np.float32)
            arrays[f"{layer.name}.bias"] = np.asarray(layer.bias, dtype=np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def read_network(path: Path) -> NetworkWeights:
    """Read what `network_bytes` wrote.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not such a file (damaged, another format version, inconsistent shapes).
    """
    data = Path(path).read_bytes()  # small (~10 kB); np.load of a path leaks it on a bad file
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable network file ({exc})") from exc
    try:
        spec = json.loads(str(arrays[_SPEC]))
        if spec.get("format_version") != NETWORK_FORMAT_VERSION:
            raise ValueError(
                f"format version {spec.get('format_version')}, expected {NETWORK_FORMAT_VERSION}"
            )

        def layers(part: str) -> tuple[DenseLayer, ...]:
            return tuple(
                DenseLayer(
                    str(entry["name"]),
                    arrays[f"{entry['name']}.kernel"].astype(np.float32, copy=False),
                    arrays[f"{entry['name']}.bias"].astype(np.float32, copy=False),
                    entry["activation"],
                )
                for entry in spec["layers"][part]
            )

        return NetworkWeights(
            kind=spec["kind"],
            n_features=int(spec["n_features"]),
            latent_dim=int(spec["latent_dim"]),
            leaky_relu_alpha=float(spec["leaky_relu_alpha"]),
            encoder=layers("encoder"),
            z_mean=layers("z_mean")[0],
            z_log_var=layers("z_log_var")[0],
            decoder=layers("decoder"),
            classifier=layers("classifier"),
        )
    except (KeyError, IndexError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a valid network file ({exc})") from exc
