"""The per-epoch checkpoint of a training: every model and optimizer variable, the best
weights so far and the loop's state, replaced atomically after each epoch, so that a training
killed at any moment and resumed ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vbsad_batch.models.paths import CHECKPOINT_NAME
from vbsad_batch.runtime.atomic_write import write_bytes_atomic

__all__ = [
    "CheckpointMismatchError",
    "TrainingState",
    "assign_variables",
    "checkpoint_state",
    "read_checkpoint",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)


class CheckpointMismatchError(ValueError):
    """`resume` found a checkpoint of another training (its datasets or settings differ)."""


@dataclass
class TrainingState:
    """Everything of a training in progress that is not a TensorFlow variable."""

    next_epoch: int = 0  # 0-based index of the next epoch to run
    best_epoch: int = 0  # 1-based; 0 = none yet
    best_val_loss: float = math.inf
    wait: int = 0  # epochs since the last improvement
    finished: bool = False
    stopped_early: bool = False
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def save_checkpoint(
    path: Path,
    *,
    key_digest: str,
    state: TrainingState,
    model: Any,
    optimizer: Any,
    best: Sequence[np.ndarray],
    ranks: int = 1,
) -> None:
    """Replace the checkpoint at `path` (atomically) by the training's current state; `ranks`:
    the number of ranks of a data-parallel training (1 otherwise), which a resumed training
    must have too."""
    arrays: dict[str, Any] = {}  # Any: np.savez's stubs type **kwds loosely
    for i, var in enumerate(model.variables):
        arrays[f"model/{i:04d}"] = var.numpy()
    for i, var in enumerate(optimizer.variables):
        arrays[f"optimizer/{i:04d}"] = var.numpy()
    for i, value in enumerate(best):
        arrays[f"best/{i:04d}"] = value
    meta = {"key_digest": key_digest, "state": dataclasses.asdict(state), "ranks": ranks}
    arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]] | None:
    """(meta: key_digest, state, ranks (absent before data parallelism: 1); variables by group
    "model", "optimizer", "best"), or None if there is no readable checkpoint at `path`."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            groups: dict[str, list[np.ndarray]] = {"model": [], "optimizer": [], "best": []}
            for name in sorted(npz.files):
                group, _, _ = name.partition("/")
                if group in groups:
                    groups[group].append(npz[name])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None
    return meta, groups


def checkpoint_state(model_dir: Path) -> dict[str, Any] | None:
    """The training state of the checkpoint in `model_dir` (keys as `TrainingState`: `next_epoch` =
    epochs completed, `best_epoch`, `best_val_loss`, `wait`, `finished`, `stopped_early`,
    `history`), or None if there is no readable checkpoint."""
    loaded = read_checkpoint(model_dir / CHECKPOINT_NAME)
    if loaded is None:
        return None
    state: dict[str, Any] = loaded[0]["state"]
    return state


def assign_variables(variables: Sequence[Any], values: Sequence[np.ndarray], what: str) -> None:
    if len(variables) != len(values):
        raise ValueError(
            f"checkpoint holds {len(values)} {what} variables, the model has {len(variables)}"
        )
    for var, value in zip(variables, values, strict=True):
        if tuple(var.shape) != value.shape:
            raise ValueError(f"checkpoint {what} variable {var.path}: shape {value.shape}")
        var.assign(value)
