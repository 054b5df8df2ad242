"""The analysis configuration: one TOML file, validated into frozen dataclasses.

Modules:

- `schema`: the configuration model (dataclasses, defaults, constants) and the TOML schema,
  documented key by key in its docstring;
- `selection`: the selection language (``"mjj > 200 and ptj1 > 30"``) -> polars expressions;
- `loading`: `load_config`: TOML -> validated dataclasses, errors naming file and key path;
- `toml_values`: typed values out of the parsed TOML, with those errors;
- `sample_tables`: the `[[samples]]` and `[[reweighted]]` tables, checked together;
- `near_miss`: "did you mean ...?" suggestions for error messages.
"""

from __future__ import annotations

from vbsad_batch.config.loading import load_config
from vbsad_batch.config.schema import (
    DEFAULT_FEATURES,
    DEFAULT_SELECTION,
    ENERGY_LIKE,
    INPUT_SUFFIXES,
    LATENT_DIM_RANGE,
    MODEL_KINDS,
    SCORE_COLUMNS,
    AnalysisConfig,
    Component,
    ConfigError,
    ModelGrid,
    ModelKind,
    ModelSpec,
    ReweightedConfig,
    SampleConfig,
    ScanConfig,
    SplitConfig,
    TrainingConfig,
)
from vbsad_batch.config.selection import SelectionError, selection_columns, selection_expr

__all__ = [
    "DEFAULT_FEATURES",
    "DEFAULT_SELECTION",
    "ENERGY_LIKE",
    "INPUT_SUFFIXES",
    "LATENT_DIM_RANGE",
    "MODEL_KINDS",
    "SCORE_COLUMNS",
    "AnalysisConfig",
    "Component",
    "ConfigError",
    "ModelGrid",
    "ModelKind",
    "ModelSpec",
    "ReweightedConfig",
    "SampleConfig",
    "ScanConfig",
    "SelectionError",
    "SplitConfig",
    "TrainingConfig",
    "load_config",
    "selection_columns",
    "selection_expr",
]
