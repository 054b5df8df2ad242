"""Where the models of an analysis live: the names of their directories and files.

Kept free of TensorFlow so that the pipeline, scoring and the report can name model directories
without loading it; `vbsad_batch.models.training` writes into exactly these directories.
"""

from __future__ import annotations

from pathlib import Path

from vbsad_batch.config import AnalysisConfig, ModelKind

__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_COPY_NAME",
    "HISTORY_NAME",
    "METRICS_NAME",
    "MODELS_DIR_NAME",
    "MODEL_FILE_NAME",
    "NETWORK_FILE_NAME",
    "PREPROCESSING_FILE_NAME",
    "model_directory",
]

MODELS_DIR_NAME = "models"
"""Where the model directories are, under the config's output_dir."""

MODEL_FILE_NAME = "model.keras"
"""The Keras model inside a model directory (`vbsad_batch.models.networks.save_model`)."""
NETWORK_FILE_NAME = "network.npz"
"""The model's dense layers as arrays, written with the Keras model: what scoring and the report
evaluate, in NumPy (`vbsad_batch.models.network_export`)."""
PREPROCESSING_FILE_NAME = "preprocessing.json"
"""The preprocessing parameters inside a model directory (`Preprocessing.to_json`)."""
CONFIG_COPY_NAME = "config.toml"
"""A copy of the analysis config the model was trained with."""
HISTORY_NAME = "history.csv"
"""The training history: one row per epoch."""
METRICS_NAME = "metrics.json"
"""Best epoch, validation loss, event counts, throughput."""
CHECKPOINT_NAME = "checkpoint.npz"
"""The checkpoint of a training in progress (deleted once the model is written)."""


def model_directory(
    config: AnalysisConfig,
    kind: ModelKind,
    latent_dim: int | None = None,
    *,
    seed: int | None = None,
    training_operator: str | None = None,
) -> Path:
    """`<output_dir>/models/<name>` of one model (`ModelSpec.name`: `<kind>_latent<k>`, with
    `_<training_operator>` for "vae_nn" and `_seed<s>` for a seed other than 0); unset values
    are the config's first ones.

    Raises:
        ValueError: "vae_nn" without a `training_operator` in the config, or an unknown kind.
    """
    spec = config.model_spec(kind, latent_dim, seed, training_operator)
    return config.output_dir / MODELS_DIR_NAME / spec.name
