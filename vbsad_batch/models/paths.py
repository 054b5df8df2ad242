"""Where the models of an analysis live: the names of their directories.

Kept free of TensorFlow so that the pipeline and the report can name model directories
without loading it; `vbsad_batch.models.training` writes into exactly these directories.
"""

from __future__ import annotations

from pathlib import Path

from vbsad_batch.config import AnalysisConfig, ModelKind

__all__ = ["MODELS_DIR_NAME", "model_directory"]

MODELS_DIR_NAME = "models"


def model_directory(config: AnalysisConfig, kind: ModelKind, latent_dim: int | None = None) -> Path:
    """`<output_dir>/models/<kind>_latent<k>`, with `_<training_operator>` for "vae_nn".

    Raises:
        ValueError: "vae_nn" without a `training_operator` in the config, or an unknown kind.
    """
    k = config.training.latent_dim if latent_dim is None else latent_dim
    name = f"{kind}_latent{k}"
    if kind == "vae_nn":
        if config.training_operator is None:
            raise ValueError(f"{config.path}: model 'vae_nn' needs `training_operator`")
        name += f"_{config.training_operator}"
    elif kind != "vae":
        raise ValueError(f"unknown model kind {kind!r}: expected 'vae' or 'vae_nn'")
    return config.output_dir / MODELS_DIR_NAME / name
