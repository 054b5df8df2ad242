"""One epoch of training as a compiled graph loop, with Keras' Adam update fused per variable,
and the validation loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from vbsad_batch.config import ModelKind, TrainingConfig
from vbsad_batch.models.networks import (
    BCE_EPSILON,
    classifier_score,
    per_event_losses,
    vae_loss,
    vae_nn_loss,
)
from vbsad_batch.models.training_data import TrainingData

__all__ = [
    "EVAL_BATCH_SIZE",
    "EpochRunner",
    "enable_determinism",
    "fused_adam",
    "graph_loop",
    "make_optimizer",
    "validation_function",
]

EVAL_BATCH_SIZE = 16384
"""Events per batch when evaluating the validation loss (memory bound only)."""


def enable_determinism(seed: int) -> None:
    """Deterministic TensorFlow ops, and the Python, NumPy, TensorFlow and Keras global seeds
    set to `seed`. Op determinism is process-wide and stays on."""
    tf.config.experimental.enable_op_determinism()
    tf.keras.utils.set_random_seed(seed)


def make_optimizer(training: TrainingConfig) -> Any:
    return tf.keras.optimizers.get(
        {"class_name": training.optimizer, "config": {"learning_rate": training.learning_rate}}
    )


def fused_adam(optimizer: Any) -> Any | None:
    """For a plain Keras Adam (no amsgrad, weight decay, clipping, EMA or gradient
    accumulation): a function (grads, variables) -> None making the same update as
    `optimizer.apply_gradients` on the optimizer's own variables (iteration count, first and
    second moments), with one fused `ResourceApplyAdam` kernel per model variable instead of
    Keras' ~10 element-wise ops each: fewer ops per step and a graph that traces in a fraction
    of the time. The arithmetic is Keras' (alpha = lr sqrt(1 - beta2^t) / (1 - beta1^t),
    m += (g - m)(1 - beta1), v += (g^2 - v)(1 - beta2), w -= alpha m / (sqrt(v) + epsilon),
    t = iterations + 1), up to float rounding. None for any other optimizer: use
    `apply_gradients`."""
    plain = (
        isinstance(optimizer, tf.keras.optimizers.Adam)
        and not optimizer.amsgrad
        and not optimizer.weight_decay
        and optimizer.clipnorm is None
        and optimizer.clipvalue is None
        and optimizer.global_clipnorm is None
        and not optimizer.use_ema
        and not getattr(optimizer, "gradient_accumulation_steps", None)
        and all(hasattr(optimizer, a) for a in ("_momentums", "_velocities", "_get_variable_index"))
    )
    if not plain:
        return None
    beta_1 = tf.constant(float(optimizer.beta_1), tf.float32)
    beta_2 = tf.constant(float(optimizer.beta_2), tf.float32)
    epsilon = tf.constant(float(optimizer.epsilon), tf.float32)

    def apply(grads: Sequence[Any], variables: Sequence[Any]) -> None:
        step = tf.cast(optimizer.iterations + 1, tf.float32)
        beta_1_power = tf.pow(beta_1, step)
        beta_2_power = tf.pow(beta_2, step)
        lr = tf.cast(optimizer.learning_rate, tf.float32)
        for grad, var in zip(grads, variables, strict=True):
            index = optimizer._get_variable_index(var)  # Keras private API: its own moments
            tf.raw_ops.ResourceApplyAdam(
                var=var.value.handle,
                m=optimizer._momentums[index].value.handle,
                v=optimizer._velocities[index].value.handle,
                beta1_power=beta_1_power,
                beta2_power=beta_2_power,
                lr=lr,
                beta1=beta_1,
                beta2=beta_2,
                epsilon=epsilon,
                grad=tf.convert_to_tensor(grad, tf.float32),
            )
        optimizer.iterations.assign_add(1)

    return apply


def graph_loop(n: Any, body: Callable[[Any], None]) -> None:
    """In a traced function: body(i) for i = 0..n-1, in order, as one `tf.while_loop` (the
    variable updates of each iteration are control dependencies of the next)."""

    def step(i: Any) -> tuple[Any]:
        body(i)
        return (i + 1,)

    tf.while_loop(lambda i: i < n, step, (tf.constant(0),))


class EpochRunner:
    """One epoch of training: a `tf.function` (traced once, fixed input signature) that runs the
    steps of a chunk of batches in a graph loop (per step: forward pass, loss of
    `vbsad_batch.models.networks`, gradient, optimizer update), called for each chunk of the epoch's
    tf.data pipeline (`training_pipeline`). Looping in the graph saves a host round trip per step;
    chunks rather than the whole epoch keep the pipeline streaming. (Iterating a tf.data
    dataset inside the graph instead costs ~0.3 s per call here to set up its iterator.)"""

    def __init__(
        self, model: Any, optimizer: Any, kind: ModelKind, training: TrainingConfig
    ) -> None:
        beta = float(training.beta)
        bce_weight = float(training.bce_weight)
        n_features = int(model.n_features)
        self._sums = tf.Variable(tf.zeros(2, tf.float32), trainable=False)  # (sum loss*n, n)
        sums = self._sums
        features = tf.TensorSpec((None, None, n_features), tf.float32)
        per_event = tf.TensorSpec((None, None), tf.float32)

        fused = fused_adam(optimizer)

        def update(loss_fn: Any, x: Any) -> None:
            with tf.GradientTape() as tape:
                loss = loss_fn()
            grads = tape.gradient(loss, model.trainable_variables)
            if fused is not None:
                fused(grads, model.trainable_variables)
            else:
                optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            n = tf.cast(tf.shape(x)[0], tf.float32)
            sums.assign_add(tf.stack([loss * n, n]))

        def vae_step(x: Any) -> None:
            update(lambda: vae_loss(model, x, training=True, beta=beta), x)

        def vae_nn_step(x: Any, x_mix: Any, labels: Any, weights: Any) -> None:
            update(
                lambda: vae_nn_loss(
                    model,
                    x,
                    x_mix,
                    labels,
                    weights,
                    training=True,
                    beta=beta,
                    bce_weight=bce_weight,
                ),
                x,
            )

        def vae_steps(xs: Any) -> None:
            graph_loop(tf.shape(xs)[0], lambda i: vae_step(xs[i]))

        def vae_nn_steps(xs: Any, xs_mix: Any, labels: Any, weights: Any) -> None:
            graph_loop(
                tf.shape(xs)[0], lambda i: vae_nn_step(xs[i], xs_mix[i], labels[i], weights[i])
            )

        # tf.function as a call, not a decorator: TensorFlow is untyped (mypy --strict).
        # No autograph: the loop is an explicit tf.while_loop and the rest has no Python
        # control flow on tensors; converting the code would triple the trace time.
        self._kind = kind
        self._vae_steps = tf.function(vae_steps, input_signature=[features], autograph=False)
        self._vae_nn_steps = tf.function(
            vae_nn_steps,
            input_signature=[features, features, per_event, per_event],
            autograph=False,
        )

    def __call__(self, chunks: Iterator[Any], n_chunks: int) -> float:
        """Train on the next `n_chunks` chunks of the pipeline iterator `chunks` (one epoch);
        return the event-weighted mean training loss."""
        self._sums.assign(tf.zeros(2, tf.float32))
        for _ in range(n_chunks):
            if self._kind == "vae":
                self._vae_steps(next(chunks))
            else:
                xs, (xs_mix, labels, weights) = next(chunks)
                self._vae_nn_steps(xs, xs_mix, labels, weights)
        total, count = self._sums.numpy()
        return float(total / count)


def validation_function(model: Any, training: TrainingConfig) -> Any:
    """(loss, mean mse, mean kld) of the validation events of a `TrainingData`, in inference
    mode, read from its caches `EVAL_BATCH_SIZE` events at a time. The loss is the training
    loss on the validation sets: the VAE loss mse + beta * kld averaged over the SM validation
    events and, for a VAE+NN, plus `bce_weight` times the classifier's binary cross-entropy on
    the mixed validation set (class-balanced weights, as in training). mse and kld are those
    of the SM validation events."""
    beta = float(training.beta)
    bce_weight = float(training.bce_weight)
    features = tf.TensorSpec((None, int(model.n_features)), tf.float32)
    per_event = tf.TensorSpec((None,), tf.float32)

    def vae_sums(x: Any) -> Any:
        mse, kld = per_event_losses(model, x, training=False)
        return tf.stack([tf.reduce_sum(mse), tf.reduce_sum(kld)])

    def bce_sums(x: Any, labels: Any, weights: Any) -> Any:
        mse, kld = per_event_losses(model, x, training=False)
        p = tf.clip_by_value(classifier_score(model, mse, kld), BCE_EPSILON, 1.0 - BCE_EPSILON)
        bce = -(labels * tf.math.log(p) + (1.0 - labels) * tf.math.log(1.0 - p))
        return tf.stack([tf.reduce_sum(weights * bce), tf.reduce_sum(tf.abs(weights))])

    vae = tf.function(vae_sums, input_signature=[features])
    classifier = tf.function(bce_sums, input_signature=[features, per_event, per_event])

    def evaluate(data: TrainingData) -> tuple[float, float, float]:
        total = np.zeros(2, dtype=np.float64)
        for start in range(0, data.val.rows, EVAL_BATCH_SIZE):
            total += vae(data.val.read(start, start + EVAL_BATCH_SIZE)).numpy()
        mse, kld = total / data.val.rows
        loss = float(mse + beta * kld)
        if data.val_mix is not None:
            width = data.n_features
            bce = np.zeros(2, dtype=np.float64)
            for start in range(0, data.val_mix.rows, EVAL_BATCH_SIZE):
                rows = data.val_mix.read(start, start + EVAL_BATCH_SIZE)
                bce += classifier(rows[:, :width], rows[:, width], rows[:, width + 1]).numpy()
            loss += bce_weight * float(bce[0] / max(bce[1], 1e-30))
        return loss, float(mse), float(kld)

    return evaluate
