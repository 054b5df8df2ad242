"""A model of an analysis as a unit of the stage contract: its directory, its key, and the
check that a trained model is current for the config. No TensorFlow: the scan, the report and
the workflow ask these questions without loading it.

A model is identified by its `ModelSpec` (kind, latent size, seed and, for a VAE+NN, training
operator: its directory name); everything else it depends on comes from the config: the
`[training]` settings, the features, and the datasets by SHA-256.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vbsad_batch.config import AnalysisConfig, ModelSpec, TrainingConfig
from vbsad_batch.errors import MissingInputError, StaleInputError
from vbsad_batch.models.paths import MODELS_DIR_NAME
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
    "spec_of",
    "training_datasets",
]

TRAINING_FORMAT_VERSION = 6
"""Version of the model directory layout and checkpoint; bump when either changes (5: the
network's NumPy export `network.npz`, which scoring and the report read; 6: the data order of
an epoch, streamed from disk, gives other weights)."""

MODEL_MANIFEST_KIND = "vbsad_batch.model"

_STAGE = "train"


def model_training(config: AnalysisConfig, spec: ModelSpec) -> TrainingConfig:
    """The `[training]` settings of the model `spec`: the config's, with its latent size and
    seed."""
    return dataclasses.replace(config.training, latent_dim=spec.latent_dim, seed=spec.seed)


def model_unit(config: AnalysisConfig, spec: ModelSpec) -> StageUnit:
    """The model directory of `spec` as a unit of the stage contract."""
    options: list[object] = ["--model", spec.kind, "--latent", spec.latent_dim, "--seed", spec.seed]
    if spec.training_operator is not None:
        options += ["--operator", spec.training_operator]
    return StageUnit(
        stage=_STAGE,
        name=spec.name,
        kind=MODEL_MANIFEST_KIND,
        directory=config.output_dir / MODELS_DIR_NAME / spec.name,
        remake=command("train", config.path, *options),
    )


def training_datasets(spec: ModelSpec) -> list[str]:
    """The datasets the model `spec` trains on (and validates on)."""
    names = ["sm_train", "sm_validation"]
    if spec.training_operator is not None:
        names += [f"mixed_{split}_{spec.training_operator}" for split in ("train", "validation")]
    return names


def model_key(
    config: AnalysisConfig, spec: ModelSpec, datasets: dict[str, DatasetInfo]
) -> dict[str, Any]:
    """What a model's weights depend on: settings (not `data_parallel`: how many ranks compute
    it), features, and its datasets by SHA-256.

    Raises:
        StaleInputError: a dataset the model needs is not among `datasets`.
    """
    checksums: dict[str, str] = {}
    for name in training_datasets(spec):
        if name not in datasets:
            remake = command("datasets", config.path)
            raise StaleInputError(
                f"{config.output_dir}: no dataset {name}; run `{remake}`",
                path=config.output_dir,
                remake=remake,
            )
        checksums[name] = datasets[name].sha256
    training = jsonable(model_training(config, spec))
    # How many processes compute a training is not what it is: a model trained data parallel
    # is the 1-rank training up to float rounding, current for every later stage whatever the
    # number of ranks (a checkpoint records its rank count: resuming needs the same).
    del training["data_parallel"]
    return {
        "format_version": TRAINING_FORMAT_VERSION,
        "tool_version": tool_version(),
        "kind": spec.kind,
        "training": training,
        "features": list(config.features),
        "log_features": list(config.log_features),
        "training_operator": spec.training_operator,
        "datasets": checksums,
    }


def spec_of(manifest: Mapping[str, Any]) -> ModelSpec:
    """The model a model manifest describes.

    Raises:
        KeyError, TypeError, ValueError: not a readable model manifest.
    """
    if manifest.get("kind") != MODEL_MANIFEST_KIND:
        raise KeyError("kind")
    key = manifest["key"]
    op = key.get("training_operator")
    return ModelSpec(
        kind=key["kind"],
        latent_dim=int(key["training"]["latent_dim"]),
        seed=int(key["training"]["seed"]),
        training_operator=None if op is None else str(op),
    )


def current_model(config: AnalysisConfig, model_dir: Path) -> dict[str, Any]:
    """The manifest of the model in `model_dir`, checked for use by a later stage: complete,
    trained on the config's current datasets with the config's current settings (its kind,
    latent size, seed and training operator being its own), and unmodified since.

    Raises:
        StaleInputError: naming the file at fault and the command that remakes it.
    """
    manifest = read_manifest(Path(model_dir) / MANIFEST_NAME) or {}
    try:
        spec = spec_of(manifest)
    except (KeyError, TypeError, ValueError) as exc:
        remake = command("train", config.path)
        raise MissingInputError(
            f"{model_dir}: no complete model (its manifest is missing or unreadable); run "
            f"`{remake}` with the model's --model, --latent, --seed and --operator",
            path=Path(model_dir) / MANIFEST_NAME,
            remake=remake,
        ) from exc
    unit = model_unit(config, spec)
    if unit.directory.resolve() != Path(model_dir).resolve():
        raise StaleInputError(
            f"{model_dir}: not a model of the current config (it would be {unit.directory}); "
            f"run `{unit.remake}`",
            path=Path(model_dir),
            remake=unit.remake,
        )
    return unit.require_current(model_key(config, spec, current_datasets(config)))
