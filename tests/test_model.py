"""The models with real TensorFlow training on small synthetic data (numpy, seeded).

SM-like events: 14 features named like the real observables, driven by 3 latent Gaussian
factors (so a VAE with latent size 3 can learn them): energy-like features log-normal around
~50-300 GeV, pseudorapidities in (-4.5, 4.5), `deltaetajj` = |etaj1 - etaj2|, `deltaphijj` in
[0, pi]. EFT-like events: the same generator with the hard-scale factor shifted up (harder
energies) and the jets more central: a partly overlapping, shifted component, as in VBS EFT.

The training loop is written here (a `tf.function` step with Adam over shuffled numpy batches),
independent of `vbsad_batch.models.training`.

Margins were chosen from seeds 0-4 (data and model seeds varied together); the values seen are
quoted next to each assertion.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import polars as pl
import pytest
import tensorflow as tf

from vbsad_batch.config import (
    DEFAULT_FEATURES,
    ENERGY_LIKE,
    AnalysisConfig,
    TrainingConfig,
    load_config,
)
from vbsad_batch.demo.lhe_writer import generate_demo
from vbsad_batch.models import scoring
from vbsad_batch.models.network_export import (
    NETWORK_FORMAT_VERSION,
    network_bytes,
    network_weights,
    read_network,
)
from vbsad_batch.models.networks import (
    VariationalAutoencoder,
    build_model,
    classifier_score,
    load_model,
    per_event_losses,
    save_model,
    scores,
    vae_loss,
    vae_nn_loss,
)
from vbsad_batch.models.numpy_networks import NumpyNetwork, load_network
from vbsad_batch.models.paths import MODEL_FILE_NAME, NETWORK_FILE_NAME, PREPROCESSING_FILE_NAME
from vbsad_batch.models.preprocessing import Preprocessing
from vbsad_batch.models.scoring import score_datasets
from vbsad_batch.runtime.progress import ProgressEvent
from vbsad_batch.weighting.datasets import build_datasets

FEATURES = DEFAULT_FEATURES
N_TRAIN = 4000
N_TEST = 2000
BATCH = 256
LEARNING_RATE = 3e-3
BETA = 1e-3
SEED = 0


# --- synthetic data ------------------------------------------------------------------------------


def synthetic_events(n: int, seed: int, *, eft: bool = False) -> pl.DataFrame:
    """n events of the 14 features (GeV, radians); `eft` shifts the hard scale and the jets."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, 3))
    if eft:
        u[:, 0] += 1.5  # harder events
    scale = 4.0 + 0.45 * u[:, 0]  # ln of the hard scale, GeV
    noise = 0.12
    columns: dict[str, np.ndarray] = {}
    for i, name in enumerate(("mjj", "ptj1", "ptj2", "mll", "ptl1", "ptl2", "ptll", "met")):
        offset = (1.6, 0.4, -0.1, 0.5, 0.0, -0.4, 0.1, 0.0)[i]
        mix = (0.5, 0.2, -0.2, 0.3, 0.1, -0.1, 0.2, 0.0)[i]
        columns[name] = np.exp(scale + offset + mix * u[:, 1] + noise * rng.normal(size=n))
    spread = 2.2 - (0.6 if eft else 0.0)
    columns["etaj1"] = spread * np.tanh(u[:, 1]) + 0.3 * rng.normal(size=n)
    columns["etaj2"] = -spread * np.tanh(u[:, 1] + 0.3 * u[:, 2]) + 0.3 * rng.normal(size=n)
    columns["etal1"] = 0.8 * np.tanh(u[:, 2]) + 0.3 * rng.normal(size=n)
    columns["etal2"] = -0.6 * np.tanh(u[:, 2]) + 0.3 * rng.normal(size=n)
    columns["deltaetajj"] = np.abs(columns["etaj1"] - columns["etaj2"])
    columns["deltaphijj"] = np.pi * (0.5 + 0.5 * np.tanh(0.8 * u[:, 2] + 0.2 * rng.normal(size=n)))
    return pl.DataFrame({name: columns[name] for name in FEATURES})


def auc(background: np.ndarray, signal: np.ndarray) -> float:
    """Area under the ROC curve of `signal` over `background` (higher = more signal-like):
    the probability that a random signal event scores above a random background event, ties
    counted one half (Mann-Whitney U / (n_b n_s))."""
    values = np.concatenate([background, signal])
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    # average ranks of ties
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = 0.5 * (s + e - 1) + 1.0
    n_b, n_s = len(background), len(signal)
    u_stat = ranks[n_b:].sum() - n_s * (n_s + 1) / 2.0
    return float(u_stat / (n_b * n_s))


def test_auc_helper() -> None:
    assert auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert auc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5
    assert auc(np.array([0.0, 2.0]), np.array([1.0, 3.0])) == 0.75


@dataclasses.dataclass
class Data:
    preprocessing: Preprocessing
    sm_train: np.ndarray
    sm_validation: np.ndarray
    sm_test: np.ndarray
    eft_train: np.ndarray
    eft_test: np.ndarray


def make_data(seed: int) -> Data:
    frames = {
        "sm_train": synthetic_events(N_TRAIN, 1000 * seed + 1),
        "sm_validation": synthetic_events(N_TEST, 1000 * seed + 2),
        "sm_test": synthetic_events(N_TEST, 1000 * seed + 3),
        "eft_train": synthetic_events(N_TRAIN, 1000 * seed + 4, eft=True),
        "eft_test": synthetic_events(N_TEST, 1000 * seed + 5, eft=True),
    }
    prep = Preprocessing.fit(frames["sm_train"], FEATURES, ENERGY_LIKE)
    return Data(prep, **{name: prep.transform(frame) for name, frame in frames.items()})


@pytest.fixture(scope="module")
def data() -> Data:
    return make_data(SEED)


def training_config(seed: int, **changes: Any) -> TrainingConfig:
    return dataclasses.replace(TrainingConfig(seed=seed, beta=BETA, batch_size=BATCH), **changes)


def train(
    model: Any,
    data: Data,
    *,
    epochs: int,
    seed: int,
    mixed: bool = False,
    on_epoch: Callable[[int], None] | None = None,
) -> None:
    """Adam over shuffled batches; VAE: SM batches; VAE+NN: an SM batch and a mixed batch
    (SM train label 0 + EFT train label 1, equal weights) per step."""
    optimizer = keras.optimizers.Adam(LEARNING_RATE)
    rng = np.random.default_rng(seed)
    x_mix = np.concatenate([data.sm_train, data.eft_train])
    y_mix = np.concatenate([np.zeros(len(data.sm_train)), np.ones(len(data.eft_train))])
    y_mix = y_mix.astype(np.float32)
    w_mix = np.ones(len(x_mix), dtype=np.float32)

    def eager_step(x_sm: Any, xm: Any, y: Any, w: Any) -> Any:
        with tf.GradientTape() as tape:
            if mixed:
                loss = vae_nn_loss(model, x_sm, xm, y, w, True, BETA, 1.0)
            else:
                loss = vae_loss(model, x_sm, True, BETA)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    step = tf.function(eager_step)

    n = len(data.sm_train)
    for epoch in range(epochs):
        order = rng.permutation(n)
        order_mix = rng.permutation(len(x_mix))
        for start in range(0, n - BATCH + 1, BATCH):
            idx = order[start : start + BATCH]
            jdx = order_mix[2 * start : 2 * start + 2 * BATCH]
            step(data.sm_train[idx], x_mix[jdx], y_mix[jdx], w_mix[jdx])
        if on_epoch is not None:
            on_epoch(epoch)


def validation_loss(model: Any, data: Data) -> float:
    return float(vae_loss(model, data.sm_validation, False, BETA))


# --- preprocessing -------------------------------------------------------------------------------


def test_preprocessing_is_fitted_on_sm_train_only(data: Data) -> None:
    sm_train = synthetic_events(N_TRAIN, 1)
    prep = Preprocessing.fit(sm_train, FEATURES, ENERGY_LIKE)
    assert prep == data.preprocessing  # same data, same fit
    assert prep.features == FEATURES
    assert set(prep.log_features) == set(ENERGY_LIKE)
    x = prep.transform(sm_train)
    assert x.dtype == np.float32
    assert x.shape == (N_TRAIN, len(FEATURES))
    np.testing.assert_allclose(x.min(axis=0), 0.0, atol=1e-7)
    np.testing.assert_allclose(x.max(axis=0), 1.0, atol=1e-6)
    # log10 on the energy-like features, identity on the others; ranges from SM train
    raw = sm_train.to_numpy()
    for j, name in enumerate(FEATURES):
        values = np.log10(raw[:, j]) if name in ENERGY_LIKE else raw[:, j]
        assert prep.minimum[j] == values.min()
        assert prep.maximum[j] == values.max()
        expected = (values - values.min()) / (values.max() - values.min())
        np.testing.assert_allclose(x[:, j], expected, rtol=1e-6, atol=1e-7)
    # other events: transformed with the SM-train range, so they may leave [0, 1]
    eft = synthetic_events(N_TEST, 4, eft=True)
    x_eft = prep.transform(eft)
    mjj = FEATURES.index("mjj")
    assert x_eft[:, mjj].max() > 1.0
    beyond = sm_train.head(2).with_columns(
        pl.Series("mjj", [10.0 ** (prep.minimum[mjj] - 1.0), 10.0 ** (prep.maximum[mjj] + 1.0)])
    )
    span = prep.maximum[mjj] - prep.minimum[mjj]
    np.testing.assert_allclose(
        prep.transform(beyond)[:, mjj], [-1.0 / span, 1.0 + 1.0 / span], rtol=1e-6
    )
    # refitting on the mixture would give another range: the fit does not see EFT events
    mixed = Preprocessing.fit(pl.concat([sm_train, eft]), FEATURES, ENERGY_LIKE)
    assert mixed.maximum[mjj] > prep.maximum[mjj]


def test_preprocessing_json_round_trip_is_exact(data: Data) -> None:
    prep = data.preprocessing
    text = prep.to_json()
    again = Preprocessing.from_json(text)
    assert again == prep
    assert again.to_json() == text
    frame = synthetic_events(100, 7)
    assert np.array_equal(again.transform(frame), prep.transform(frame))
    assert json.loads(text)["format"] == 1


def test_preprocessing_errors() -> None:
    frame = synthetic_events(50, 3)
    with pytest.raises(ValueError, match=r"log_features \['etal1'\] are not among"):
        Preprocessing.fit(frame, ("mjj", "met"), ("etal1",))
    with pytest.raises(ValueError, match=r"'etal1': 50 value\(s\) <= 0"):
        Preprocessing.fit(frame.with_columns(pl.lit(-1.0).alias("etal1")), FEATURES, ("etal1",))
    with pytest.raises(ValueError, match="column\\(s\\) mjj missing"):
        Preprocessing.fit(frame.drop("mjj"), FEATURES, ())
    with pytest.raises(ValueError, match="'met': needs finite minimum < maximum"):
        Preprocessing.fit(frame.with_columns(pl.lit(5.0).alias("met")), FEATURES, ())
    with pytest.raises(ValueError, match="empty"):
        Preprocessing.fit(frame.head(0), FEATURES, ())
    prep = Preprocessing.fit(frame, FEATURES, ENERGY_LIKE)
    bad = frame.head(3).with_columns(pl.Series("met", [1.0, 0.0, math.nan]))
    with pytest.raises(ValueError, match=r"'met': 2 value\(s\) <= 0 or NaN"):
        prep.transform(bad)
    with pytest.raises(ValueError, match="'etal1': 1 value\\(s\\) not finite"):
        prep.transform(frame.head(1).with_columns(pl.lit(math.inf).alias("etal1")))
    with pytest.raises(ValueError, match="expected format 1"):
        Preprocessing.from_json('{"format": 2}')
    with pytest.raises(ValueError, match="missing or invalid field"):
        Preprocessing.from_json('{"format": 1, "features": ["mjj"]}')


# --- model structure and losses ------------------------------------------------------------------


def test_build_model_layers_follow_the_config() -> None:
    training = TrainingConfig(latent_dim=5, hidden_layers=(20, 10, 7), classifier_units=50)
    vae = build_model("vae", 14, training)
    nn = build_model("vae_nn", 14, training)
    assert isinstance(vae, VariationalAutoencoder)
    assert (vae.kind, nn.kind) == ("vae", "vae_nn")
    kernels = {v.path.split("/", 1)[1]: tuple(v.shape) for v in nn.weights if "kernel" in v.path}
    assert kernels == {
        "encoder_dense_0/kernel": (14, 20),
        "encoder_dense_1/kernel": (20, 10),
        "encoder_dense_2/kernel": (10, 7),
        "z_mean/kernel": (7, 5),
        "z_log_var/kernel": (7, 5),
        "decoder_dense_0/kernel": (5, 7),
        "decoder_dense_1/kernel": (7, 10),
        "decoder_dense_2/kernel": (10, 20),
        "reconstruction/kernel": (20, 14),
        "classifier_dense/kernel": (2, 50),
        "classifier_output/kernel": (50, 1),
    }
    assert not any("classifier" in v.path for v in vae.weights)
    # the same seed gives the same initial weights; another seed others
    again = build_model("vae_nn", 14, training)
    other = build_model("vae_nn", 14, dataclasses.replace(training, seed=1))
    for a, b, c in zip(nn.weights, again.weights, other.weights, strict=True):
        assert np.array_equal(a.numpy(), b.numpy())
        if "kernel" in a.path:
            assert not np.array_equal(a.numpy(), c.numpy())
    with pytest.raises(ValueError, match="unknown model kind 'ae'"):
        build_model("ae", 14, training)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="plain VAE"):
        classifier_score(vae, tf.zeros(3), tf.zeros(3))


def _trained_a_little(kind: str, data: Data) -> Any:
    model = build_model(kind, len(FEATURES), training_config(SEED))  # type: ignore[arg-type]
    train(model, data, epochs=1, seed=SEED, mixed=kind == "vae_nn")
    return model


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def test_losses_equal_a_numpy_computation(data: Data) -> None:
    model = _trained_a_little("vae_nn", data)
    x = data.sm_test[:500]
    z_mean, z_log_var = (t.numpy().astype(np.float64) for t in model.encode(x))
    x_hat = model.decode(z_mean).numpy().astype(np.float64)  # inference: z = z_mean
    mse_np = np.mean((x - x_hat) ** 2, axis=1)
    kld_np = -0.5 * np.sum(1.0 + z_log_var - z_mean**2 - np.exp(z_log_var), axis=1)
    mse, kld = per_event_losses(model, x, training=False)
    np.testing.assert_allclose(mse.numpy(), mse_np, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(kld.numpy(), kld_np, rtol=1e-4, atol=1e-6)
    assert kld_np.min() > -1e-5  # a KL divergence

    # training mode: the decoder sees a sampled z (the MSE changes), the KLD does not
    mse_t, kld_t = per_event_losses(model, x, training=True)
    np.testing.assert_allclose(kld_t.numpy(), kld_np, rtol=1e-4, atol=1e-6)
    assert not np.allclose(mse_t.numpy(), mse_np, rtol=1e-3)

    # the classifier: Dense(50, linear) -> Dense(1, hard sigmoid) on (mse, kld)
    (k1, b1), (k2, b2) = ([w.numpy() for w in layer.weights] for layer in model.classifier_layers)
    features = np.stack([mse_np, kld_np], axis=1)
    score_np = _hard_sigmoid((features @ k1 + b1) @ k2 + b2)[:, 0]
    score = classifier_score(model, mse, kld).numpy()
    np.testing.assert_allclose(score, score_np, rtol=1e-4, atol=1e-6)
    out = scores(model, x, batch_size=128)
    np.testing.assert_allclose(out["mse"], mse_np, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(out["kld"], kld_np, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["score"], score_np, rtol=1e-4, atol=1e-6)

    # the loss functions
    beta = 0.25
    loss = vae_loss(model, x, False, beta).numpy()
    np.testing.assert_allclose(loss, np.mean(mse_np + beta * kld_np), rtol=1e-5)
    w = np.linspace(-0.5, 2.0, len(x)).astype(np.float32)  # negative weights like LIN yields
    weighted = vae_loss(model, x, False, beta, weights=w).numpy()
    expected = np.sum(w * (mse_np + beta * kld_np)) / np.sum(np.abs(w))
    np.testing.assert_allclose(weighted, expected, rtol=1e-4)

    labels = (np.arange(len(x)) % 2).astype(np.float32)
    p = np.clip(score_np, 1e-7, 1 - 1e-7)
    bce = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    x_sm = data.sm_validation[:300]
    sm_mse, sm_kld = (t.numpy() for t in per_event_losses(model, x_sm, training=False))
    for weights, bce_mean in ((None, bce.mean()), (w, np.sum(w * bce) / np.sum(np.abs(w)))):
        total = vae_nn_loss(model, x_sm, x, labels, weights, False, beta, 3.0).numpy()
        np.testing.assert_allclose(
            total, np.mean(sm_mse + beta * sm_kld) + 3.0 * bce_mean, rtol=1e-4
        )


# --- training ------------------------------------------------------------------------------------


def test_vae_learns_sm_and_reconstructs_it_better_than_a_shifted_distribution(
    data: Data,
) -> None:
    model = build_model("vae", len(FEATURES), training_config(SEED))
    history = [validation_loss(model, data)]
    train(
        model,
        data,
        epochs=15,
        seed=SEED,
        on_epoch=lambda _: history.append(validation_loss(model, data)),
    )
    # Seeds 0-4: final / initial validation loss 0.061-0.098; final / after one epoch 0.50-0.80.
    assert history[-1] < 0.25 * history[0], history
    assert history[-1] < history[1], history

    sm = synthetic_events(N_TEST, 3)
    shifted = sm.with_columns(pl.col("mjj") * 2.5, pl.col("ptj1") * 2.0, pl.col("ptj2") * 2.0)
    x_shifted = data.preprocessing.transform(shifted)
    # mostly still inside the SM range: the VAE must have learnt the correlations
    assert ((x_shifted < 0) | (x_shifted > 1)).any(axis=1).mean() < 0.1
    mse_sm = scores(model, data.preprocessing.transform(sm))["mse"]
    mse_shifted = scores(model, x_shifted)["mse"]
    # Seeds 0-4: mean MSE ratio 1.26-1.46, AUC 0.63-0.73.
    assert mse_shifted.mean() > 1.15 * mse_sm.mean()
    assert auc(mse_sm, mse_shifted) > 0.58


def test_vae_nn_classifier_separates_an_eft_like_component(data: Data) -> None:
    model = build_model("vae_nn", len(FEATURES), training_config(SEED))
    train(model, data, epochs=15, seed=SEED, mixed=True)
    sm = scores(model, data.sm_test)
    eft = scores(model, data.eft_test)
    assert set(sm) == {"mse", "kld", "score"}
    assert sm["score"].min() >= 0.0
    assert sm["score"].max() <= 1.0
    # Seeds 0-4: AUC 0.867-0.876 (the plain VAE's MSE alone: 0.48-0.70 on these events).
    assert auc(sm["score"], eft["score"]) > 0.80
    assert eft["score"].mean() > sm["score"].mean() + 0.1


# --- saving --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["vae", "vae_nn"])
def test_save_and_load_give_identical_scores(kind: str, data: Data, tmp_path: Path) -> None:
    model = _trained_a_little(kind, data)
    path = save_model(model, tmp_path / "model_dir")
    assert path == tmp_path / "model_dir" / MODEL_FILE_NAME
    # the Keras model and its NumPy export, no temporaries
    assert sorted(p.name for p in path.parent.iterdir()) == [MODEL_FILE_NAME, NETWORK_FILE_NAME]
    loaded = load_model(tmp_path / "model_dir")
    assert isinstance(loaded, VariationalAutoencoder)
    assert loaded.kind == kind
    assert loaded.get_config() == model.get_config()
    before = scores(model, data.sm_test, batch_size=512)
    after = scores(loaded, data.sm_test, batch_size=512)
    assert set(after) == set(before)
    for name in before:
        assert np.array_equal(before[name], after[name]), name
    for a, b in zip(model.weights, loaded.weights, strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
    # the sampling RNG state is part of the saved state: the next samples are the same too
    x = data.sm_test[:64]
    np.testing.assert_array_equal(
        model(x, training=True)["reconstruction"].numpy(),
        loaded(x, training=True)["reconstruction"].numpy(),
    )
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_model(tmp_path)


# --- the NumPy evaluation of a trained network ---------------------------------------------------


@pytest.mark.parametrize("kind", ["vae", "vae_nn"])
def test_the_numpy_network_computes_what_tensorflow_computes(
    kind: str, data: Data, tmp_path: Path
) -> None:
    """A trained model evaluated in NumPy from its `network.npz` (as scoring and the report do)
    equals the Keras model in inference mode: every output, on SM and on shifted EFT events,
    to float32 rounding (max relative differences seen: ~1e-6)."""
    model = _trained_a_little(kind, data)
    save_model(model, tmp_path)
    network = load_network(tmp_path)
    assert (network.kind, network.n_features) == (kind, len(FEATURES))
    for x in (data.sm_test, data.eft_test):
        expected = {name: t.numpy() for name, t in model(x, training=False).items()}
        ours = network.forward(x)
        assert set(ours) == set(expected)
        for name, values in expected.items():
            assert ours[name].shape == values.shape, name
            np.testing.assert_allclose(ours[name], values, rtol=1e-5, atol=1e-6, err_msg=name)
        tf_scores = scores(model, x, batch_size=512)
        np_scores = network.scores(x)
        assert set(np_scores) == set(tf_scores) == set(network.score_names())
        for name, values in tf_scores.items():
            assert np_scores[name].dtype == np.float32
            np.testing.assert_allclose(np_scores[name], values, rtol=1e-5, err_msg=name)
        # a row's scores do not depend on the rest of its batch
        small = network.scores(x, batch_size=7)
        for name in np_scores:
            assert np.array_equal(small[name], np_scores[name]), name
    reconstruction = model(data.sm_test, training=False)["reconstruction"].numpy()
    np.testing.assert_allclose(
        network.reconstruct(data.sm_test), reconstruction, rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match=r"expected inputs of shape \(n, 14\)"):
        network.scores(data.sm_test[:, :5])


def test_the_network_file_holds_the_keras_weights_exactly(data: Data, tmp_path: Path) -> None:
    model = _trained_a_little("vae_nn", data)
    save_model(model, tmp_path)
    weights = read_network(tmp_path / NETWORK_FILE_NAME)
    layers = [layer for part in weights.parts().values() for layer in part]
    assert [layer.name for layer in layers] == [
        "encoder_dense_0",
        "encoder_dense_1",
        "encoder_dense_2",
        "z_mean",
        "z_log_var",
        "decoder_dense_0",
        "decoder_dense_1",
        "decoder_dense_2",
        "reconstruction",
        "classifier_dense",
        "classifier_output",
    ]
    for layer in layers:
        kernel, bias = (w.numpy() for w in model.weights if w.path.split("/")[-2] == layer.name)
        assert np.array_equal(layer.kernel, kernel), layer.name
        assert np.array_equal(layer.bias, bias), layer.name
    activations = [layer.activation for layer in layers]
    assert activations == ["leaky_relu"] * 3 + ["linear"] * 2 + ["leaky_relu"] * 3 + [
        "linear",
        "linear",
        "hard_sigmoid",
    ]
    assert weights.leaky_relu_alpha == model.leaky_relu_alpha
    # the file is a plain .npz: no pickled objects; writing it again gives the same bytes
    assert network_bytes(read_network(tmp_path / NETWORK_FILE_NAME)) == network_bytes(weights)
    with np.load(tmp_path / NETWORK_FILE_NAME, allow_pickle=False) as npz:
        assert json.loads(str(npz["spec"]))["format_version"] == NETWORK_FORMAT_VERSION


def test_a_damaged_or_missing_network_file_is_named(data: Data, tmp_path: Path) -> None:
    model = _trained_a_little("vae", data)
    save_model(model, tmp_path)
    path = tmp_path / NETWORK_FILE_NAME
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=rf"{path}: not a readable network file"):
        load_network(tmp_path)
    weights = network_weights(model)
    with np.load(io.BytesIO(network_bytes(weights)), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    spec = json.loads(str(arrays["spec"]))
    spec["format_version"] = NETWORK_FORMAT_VERSION + 1
    buffer = io.BytesIO()
    np.savez(buffer, **{**arrays, "spec": np.array(json.dumps(spec))})
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match=r"not a valid network file.*format version"):
        load_network(tmp_path)
    del arrays["z_mean.bias"]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match=r"not a valid network file.*z_mean\.bias"):
        load_network(tmp_path)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"network\.npz: missing"):
        load_network(tmp_path)
    assert isinstance(NumpyNetwork(weights), NumpyNetwork)


# --- scoring the test datasets -------------------------------------------------------------------

DEMO_CONFIG = """
operators = ["cW", "cHW"]
training_operator = "cW"
[[reweighted]]
name = "demo"
files = "demo/ssww_demo.lhe.gz"
sm_weight = "sm"
plus = "{op}_p1"
minus = "{op}_m1"
k = 1.0
"""


def _model_dir(config: AnalysisConfig, kind: str, seed: int) -> tuple[Path, Any, Preprocessing]:
    sm_train = pl.read_parquet(config.output_dir / "datasets" / "sm_train.parquet")
    prep = Preprocessing.fit(sm_train, config.features, config.log_features)
    model = build_model(kind, len(config.features), training_config(seed))  # type: ignore[arg-type]
    directory = config.output_dir / "models" / f"{kind}_latent3"
    save_model(model, directory)
    (directory / PREPROCESSING_FILE_NAME).write_text(prep.to_json(), encoding="utf-8")
    return directory, model, prep


def test_score_datasets_writes_every_test_dataset(tmp_path: Path) -> None:
    generate_demo(tmp_path / "demo", n_events=3000, eft_samples=False)
    (tmp_path / "ana.toml").write_text(DEMO_CONFIG, encoding="utf-8")
    config = load_config(tmp_path / "ana.toml")
    datasets = build_datasets(config)
    model_dir, model, prep = _model_dir(config, "vae_nn", 0)
    assert scoring._MODEL_FILES == (NETWORK_FILE_NAME, PREPROCESSING_FILE_NAME)

    events: list[ProgressEvent] = []
    paths = list(score_datasets(config, model_dir, progress=events.append, batch_rows=200).outputs)
    out_dir = config.output_dir / "scores" / "vae_nn_latent3"
    expected_names = ["sm_validation", "sm_test"] + [
        f"{component}_{split}_{op}"
        for split in ("validation", "test")
        for op in ("cHW", "cW")
        for component in ("lin", "quad")
    ]
    assert paths == [out_dir / f"{name}.parquet" for name in expected_names]
    assert {e.item for e in events if e.kind == "item_finished"} == set(expected_names)
    by_name = {info.name: info for info in datasets.datasets}
    for name, path in zip(expected_names, paths, strict=True):
        result = pl.read_parquet(path)
        source = pl.read_parquet(by_name[name].path)
        assert result.columns == ["event", "input_sha256", "yield", "mse", "kld", "score"]
        assert result.height == source.height > 0
        assert result.select("event", "input_sha256", "yield").equals(
            source.select("event", "input_sha256", "yield")
        )
        assert result.schema["mse"] == pl.Float32
        # TensorFlow's own scores: NumPy's float64 evaluation is within their float32 rounding
        reference = scores(model, prep.transform(source), batch_size=200)
        for column in ("mse", "kld", "score"):
            np.testing.assert_allclose(result[column].to_numpy(), reference[column], rtol=1e-5)

    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["kind"] == "vbsad_batch.scores"
    assert manifest["key"]["model"]["checksum"] == scoring.model_checksum(model_dir)[0]
    assert manifest["key"]["datasets"] == [
        {"name": name, "sha256": by_name[name].sha256} for name in expected_names
    ]
    assert [o["rows"] for o in manifest["outputs"]] == [by_name[n].n_rows for n in expected_names]
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".tmp-")]

    # up to date: nothing is rewritten
    mtimes = [p.stat().st_mtime_ns for p in paths]
    events.clear()
    assert list(score_datasets(config, model_dir, progress=events.append).outputs) == paths
    assert [e.message for e in events] == ["up to date"]
    assert [p.stat().st_mtime_ns for p in paths] == mtimes

    # another model in the same directory: rescored
    _, other, _ = _model_dir(config, "vae_nn", 1)
    score_datasets(config, model_dir)
    rescored = pl.read_parquet(out_dir / "sm_test.parquet")["mse"].to_numpy()
    np.testing.assert_allclose(
        rescored,
        scores(other, prep.transform(pl.read_parquet(by_name["sm_test"].path)))["mse"],
        rtol=1e-5,
    )

    # a plain VAE has no classifier score
    vae_dir, _, _ = _model_dir(config, "vae", 0)
    vae_paths = score_datasets(config, vae_dir).outputs
    assert vae_paths[0].parent.name == "vae_latent3"
    assert pl.read_parquet(vae_paths[0]).columns == ["event", "input_sha256", "yield", "mse", "kld"]

    # a dataset modified after the datasets stage, a missing model file
    with by_name["quad_test_cW"].path.open("ab") as f:
        f.write(b"x")
    with pytest.raises(ValueError, match=r"quad_test_cW.parquet: SHA-256 differs"):
        score_datasets(config, model_dir)
    (vae_dir / PREPROCESSING_FILE_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=r"preprocessing\.json: missing"):
        score_datasets(config, vae_dir)
    # a model saved before the NumPy export: the error says how to make it again
    (model_dir / NETWORK_FILE_NAME).unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"network\.npz: missing \(a model saved before scoring without TensorFlow "
        r"existed\); train the model again: `vbsad train .*ana\.toml`",
    ):
        score_datasets(config, model_dir)
