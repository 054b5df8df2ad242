"""A model of an analysis as a unit of the stage contract: its directory, its key, and the
check that a trained model is current for the config. No TensorFlow: the scan, the report and
the workflow ask these questions without loading it.

A model is identified by its kind and latent size (and, for a VAE+NN, the config's training
operator, part of its directory name); everything else it depends on comes from the config:
the `[training]` settings, the features, and the datasets by SHA-256.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vbsad_batch.config import LATENT_DIM_RANGE, AnalysisConfig, ModelKind, TrainingConfig
from vbsad_batch.errors import MissingInputError, StaleInputError
from vbsad_batch.models.paths import model_directory
from vbsad_batch.runtime.provenance import MANIFEST_NAME, jsonable, read_manifest, tool_version
from vbsad_batch.runtime.stage import StageUnit, command
from vbsad_batch.weighting.datasets import DatasetInfo, current_datasets

__all__ = [
    "MODEL_MANIFEST_KIND",
    "TRAINING_FORMAT_VERSION",
    "current_model",
    "model_key",
    "model_training",
    "model_unit",
    "training_datasets",
]

TRAINING_FORMAT_VERSION = 2
"""Version of the model directory layout and checkpoint; bump when either changes."""

MODEL_MANIFEST_KIND = "vbsad_batch.model"

_STAGE = "train"


def model_training(config: AnalysisConfig, latent_dim: int | None = None) -> TrainingConfig:
    """The `[training]` settings of `config`, with the latent size `latent_dim` if given.

    Raises:
        ValueError: `latent_dim` outside `LATENT_DIM_RANGE`.
    """
    if latent_dim is None:
        return config.training
    low, high = LATENT_DIM_RANGE
    if not low <= latent_dim <= high:
        raise ValueError(f"latent_dim must be in {low}..{high}, got {latent_dim}")
    return dataclasses.replace(config.training, latent_dim=latent_dim)


def model_unit(config: AnalysisConfig, kind: ModelKind, latent_dim: int | None = None) -> StageUnit:
    """The model directory of (`kind`, `latent_dim`) as a unit of the stage contract."""
    training = model_training(config, latent_dim)
    directory = model_directory(config, kind, training.latent_dim)
    return StageUnit(
        stage=_STAGE,
        name=directory.name,
        kind=MODEL_MANIFEST_KIND,
        directory=directory,
        remake=command("train", config.path, "--model", kind, "--latent", training.latent_dim),
    )


def training_datasets(config: AnalysisConfig, kind: ModelKind) -> list[str]:
    """The datasets a model of `kind` trains on."""
    names = ["sm_train", "sm_validation"]
    if kind == "vae_nn":
        names.append(f"mixed_train_{config.training_operator}")
    return names


def model_key(
    config: AnalysisConfig,
    kind: ModelKind,
    training: TrainingConfig,
    datasets: dict[str, DatasetInfo],
) -> dict[str, Any]:
    """What a model's weights depend on: settings, features, and its datasets by SHA-256.

    Raises:
        StaleInputError: a dataset the model needs is not among `datasets`.
    """
    checksums: dict[str, str] = {}
    for name in training_datasets(config, kind):
        if name not in datasets:
            raise StaleInputError(
                f"{config.output_dir}: no dataset {name}; run `{command('datasets', config.path)}`",
                path=config.output_dir,
                remake=command("datasets", config.path),
            )
        checksums[name] = datasets[name].sha256
    return {
        "format_version": TRAINING_FORMAT_VERSION,
        "tool_version": tool_version(),
        "kind": kind,
        "training": jsonable(training),
        "features": list(config.features),
        "log_features": list(config.log_features),
        "training_operator": config.training_operator if kind == "vae_nn" else None,
        "datasets": checksums,
    }


def current_model(config: AnalysisConfig, model_dir: Path) -> dict[str, Any]:
    """The manifest of the model in `model_dir`, checked for use by a later stage: complete,
    trained on the config's current datasets with the config's current settings (its kind and
    latent size being its own), and unmodified since.

    Raises:
        StaleInputError: naming the file at fault and the command that remakes it.
    """
    manifest = read_manifest(Path(model_dir) / MANIFEST_NAME) or {}
    try:
        if manifest.get("kind") != MODEL_MANIFEST_KIND:
            raise KeyError("kind")
        kind: ModelKind = manifest["key"]["kind"]
        latent = int(manifest["key"]["training"]["latent_dim"])
        unit = model_unit(config, kind, latent)
    except (KeyError, TypeError, ValueError) as exc:
        remake = command("train", config.path)
        raise MissingInputError(
            f"{model_dir}: no complete model (its manifest is missing or unreadable); run "
            f"`{remake}` with the model's --model and --latent",
            path=Path(model_dir) / MANIFEST_NAME,
            remake=remake,
        ) from exc
    if unit.directory.resolve() != Path(model_dir).resolve():
        raise StaleInputError(
            f"{model_dir}: not a model of the current config (it would be {unit.directory}); "
            f"run `{unit.remake}`",
            path=Path(model_dir),
            remake=unit.remake,
        )
    key = model_key(config, kind, model_training(config, latent), current_datasets(config))
    return unit.require_current(key)
