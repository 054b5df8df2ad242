"""Loading the analysis config: TOML -> validated `vbsad_batch.config.schema` dataclasses.

Every error raises `ConfigError` with a message ``"<config file>: <key path>: <problem>"``,
for example ``"ana.toml: samples[2].operator: 'cWW' is not declared in `operators`"``; an
unknown key comes with the nearest valid key as a suggestion. Relative paths (sample files,
`output_dir`) are relative to the directory of the config file. The schema is documented in
`vbsad_batch.config.schema`. Typed values and their errors: `vbsad_batch.config.toml_values`;
the sample tables: `vbsad_batch.config.sample_tables`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, get_args

from vbsad_batch.config.near_miss import did_you_mean
from vbsad_batch.config.sample_tables import check_sources, reweighted_table, sample_table
from vbsad_batch.config.schema import (
    DEFAULT_FEATURES,
    DEFAULT_SELECTION,
    ENERGY_LIKE,
    LATENT_DIM_RANGE,
    SCORE_COLUMNS,
    AnalysisConfig,
    ModelGrid,
    RegionFrom,
    ScanConfig,
    SplitConfig,
    TrainingConfig,
)
from vbsad_batch.config.selection import SelectionError, parse_selection
from vbsad_batch.config.slurm_table import slurm_table
from vbsad_batch.config.toml_values import TomlValues, check_declared, type_name

__all__ = ["load_config"]

_OPERATOR_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]*")


# --- sections ----------------------------------------------------------------------------------

_TOP_KEYS = (
    "operators",
    "luminosity_fb",
    "selection",
    "features",
    "log_features",
    "training_operator",
    "training_operators",
    "output_dir",
    "split",
    "training",
    "scan",
    "samples",
    "reweighted",
    "slurm",
)
_TRAINING_KEYS = (*(f.name for f in fields(TrainingConfig)), "seeds", "latent_dims")
_SCAN_KEYS = tuple(f.name for f in fields(ScanConfig))
_OPTIMIZERS = ("adam",)
_SPLIT_KEYS = tuple(f.name for f in fields(SplitConfig))
_SPLIT_TOLERANCE = 1e-9


def _operator_list(ctx: TomlValues, value: object) -> tuple[str, ...]:
    names = ctx.string_list(value, "operators")
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not _OPERATOR_RE.fullmatch(name):
            ctx.fail(
                f"operators[{i}]",
                f"invalid operator name {name!r}: letters, digits and _ . + -, starting with a "
                "letter (it names files: no path separator, space or control character)",
            )
        if name in seen:
            ctx.fail(f"operators[{i}]", f"{name!r} is declared twice")
        seen.add(name)
    return tuple(names)


def _split(ctx: TomlValues, value: object) -> SplitConfig:
    table = ctx.table(value, "split")
    ctx.check_keys(table, _SPLIT_KEYS, "split")
    defaults = SplitConfig()
    fractions: dict[str, float] = {}
    for key in ("train", "validation", "test"):
        frac = ctx.number(table.get(key, getattr(defaults, key)), f"split.{key}")
        if not 0.0 <= frac <= 1.0:
            ctx.fail(f"split.{key}", f"must be in [0, 1], got {frac}")
        fractions[key] = frac
    total = sum(fractions.values())
    if abs(total - 1.0) > _SPLIT_TOLERANCE:
        ctx.fail(
            "split",
            f"train + validation + test must sum to 1, got "
            f"{fractions['train']} + {fractions['validation']} + {fractions['test']} = {total}",
        )
    if fractions["train"] == 0.0:
        ctx.fail("split.train", "must be > 0")
    seed = table.get("seed", defaults.seed)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        ctx.fail("split.seed", f"expected an integer >= 0, got {type_name(seed)}")
    return SplitConfig(seed=seed, **fractions)


def _integer_list(
    ctx: TomlValues, value: object, key: str, minimum: int, maximum: int | None = None
) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        ctx.fail(key, f"expected a non-empty list of integers, got {type_name(value)}")
    numbers = tuple(ctx.integer(v, f"{key}[{i}]", minimum, maximum) for i, v in enumerate(value))
    for i, number in enumerate(numbers):
        if number in numbers[:i]:
            ctx.fail(f"{key}[{i}]", f"{number} is listed twice")
    return numbers


def _grid_lists(ctx: TomlValues, table: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """`seeds` / `latent_dims` of `[training]` (or the single `seed` / `latent_dim`)."""
    low, high = LATENT_DIM_RANGE
    lists: dict[str, tuple[int, ...]] = {}
    for single, plural, minimum, maximum in (
        ("seed", "seeds", 0, None),
        ("latent_dim", "latent_dims", low, high),
    ):
        if plural not in table:
            continue
        if single in table:
            ctx.fail(f"training.{plural}", f"give either `{single}` or `{plural}`, not both")
        lists[single] = _integer_list(ctx, table[plural], f"training.{plural}", minimum, maximum)
    return lists


def _boolean(ctx: TomlValues, value: object, key: str) -> bool:
    if not isinstance(value, bool):
        ctx.fail(key, f"expected true or false, got {type_name(value)}")
    return value


def _training(ctx: TomlValues, value: object) -> tuple[TrainingConfig, dict[str, tuple[int, ...]]]:
    """The training settings (with the grid's first seed and latent size) and the grid lists."""
    table = ctx.table(value, "training")
    ctx.check_keys(table, _TRAINING_KEYS, "training")
    defaults = TrainingConfig()
    lists = _grid_lists(ctx, table)

    def get(key: str) -> object:
        if key in lists:
            return lists[key][0]
        return table.get(key, getattr(defaults, key))

    optimizer = ctx.string(get("optimizer"), "training.optimizer")
    if optimizer not in _OPTIMIZERS:
        ctx.fail(
            "training.optimizer",
            f"{optimizer!r} is not supported; one of {', '.join(_OPTIMIZERS)}"
            f"{did_you_mean(optimizer.lower(), _OPTIMIZERS)}",
        )
    learning_rate = ctx.number(get("learning_rate"), "training.learning_rate")
    if learning_rate <= 0:
        ctx.fail("training.learning_rate", f"must be > 0, got {learning_rate}")
    floats: dict[str, float] = {}
    for key in ("beta", "bce_weight", "leaky_relu_alpha"):
        number = ctx.number(get(key), f"training.{key}")
        if number < 0:
            ctx.fail(f"training.{key}", f"must be >= 0, got {number}")
        floats[key] = number
    raw_hidden = get("hidden_layers")
    if isinstance(raw_hidden, tuple):
        raw_hidden = list(raw_hidden)
    if not isinstance(raw_hidden, list):
        ctx.fail(
            "training.hidden_layers", f"expected a list of integers, got {type_name(raw_hidden)}"
        )
    if not raw_hidden:
        ctx.fail("training.hidden_layers", "must not be empty")
    hidden = tuple(
        ctx.integer(width, f"training.hidden_layers[{i}]", 1) for i, width in enumerate(raw_hidden)
    )
    low, high = LATENT_DIM_RANGE
    training = TrainingConfig(
        optimizer="adam",
        learning_rate=learning_rate,
        epochs=ctx.integer(get("epochs"), "training.epochs", 1),
        patience=ctx.integer(get("patience"), "training.patience", 1),
        batch_size=ctx.integer(get("batch_size"), "training.batch_size", 1),
        latent_dim=ctx.integer(get("latent_dim"), "training.latent_dim", low, high),
        hidden_layers=hidden,
        classifier_units=ctx.integer(get("classifier_units"), "training.classifier_units", 1),
        seed=ctx.integer(get("seed"), "training.seed", 0),
        data_parallel=_boolean(ctx, get("data_parallel"), "training.data_parallel"),
        **floats,
    )
    return training, lists


def _scan(ctx: TomlValues, value: object) -> ScanConfig:
    table = ctx.table(value, "scan")
    ctx.check_keys(table, _SCAN_KEYS, "scan")
    defaults = ScanConfig()

    def get(key: str) -> object:
        return table.get(key, getattr(defaults, key))

    significance = ctx.number(get("significance"), "scan.significance")
    if significance <= 0:
        ctx.fail("scan.significance", f"must be > 0, got {significance}")
    min_sm_yield = ctx.number(get("min_sm_yield"), "scan.min_sm_yield")
    if min_sm_yield < 0:
        ctx.fail("scan.min_sm_yield", f"must be >= 0 events, got {min_sm_yield}")
    columns: dict[str, tuple[str, ...]] = {}
    for kind in ("vae", "vae_nn"):
        key = f"scan.{kind}_scores"
        raw = get(f"{kind}_scores")
        names = ctx.string_list(
            list(raw) if isinstance(raw, tuple) else raw, key, allow_single=True
        )
        if not names:
            ctx.fail(key, "must not be empty")
        allowed = SCORE_COLUMNS[kind]
        for i, name in enumerate(names):
            if name not in allowed:
                ctx.fail(
                    f"{key}[{i}]",
                    f"{name!r} is not a score column of a {kind!r} model; one of "
                    f"{', '.join(allowed)}{did_you_mean(name, allowed)}",
                )
            if name in names[:i]:
                ctx.fail(f"{key}[{i}]", f"{name!r} is listed twice")
        columns[kind] = tuple(names)
    region_from = ctx.string(get("region_from"), "scan.region_from")
    if region_from not in get_args(RegionFrom):
        choices = get_args(RegionFrom)
        ctx.fail(
            "scan.region_from",
            f"{region_from!r} is not one of {', '.join(choices)}"
            f"{did_you_mean(region_from, choices)}",
        )
    return ScanConfig(
        significance=significance,
        min_sm_mc_events=ctx.integer(get("min_sm_mc_events"), "scan.min_sm_mc_events", 1),
        min_sm_yield=min_sm_yield,
        bootstrap_replicas=ctx.integer(get("bootstrap_replicas"), "scan.bootstrap_replicas", 0),
        bootstrap_chunk=ctx.integer(get("bootstrap_chunk"), "scan.bootstrap_chunk", 1),
        seed=ctx.integer(get("seed"), "scan.seed", 0),
        interval_bins=ctx.integer(get("interval_bins"), "scan.interval_bins", 2),
        curve_points=ctx.integer(get("curve_points"), "scan.curve_points", 0),
        vae_scores=columns["vae"],
        vae_nn_scores=columns["vae_nn"],
        region_from=region_from,  # type: ignore[arg-type]  # checked against RegionFrom above
    )


def _parse(data: Mapping[str, Any], ctx: TomlValues, check_files: bool) -> AnalysisConfig:
    ctx.check_keys(data, _TOP_KEYS, "")
    declared = _operator_list(ctx, data.get("operators", []))

    luminosity = ctx.number(data.get("luminosity_fb", 350.0), "luminosity_fb")
    if luminosity <= 0:
        ctx.fail("luminosity_fb", f"must be > 0 fb^-1, got {luminosity}")

    selection = ctx.string(data.get("selection", DEFAULT_SELECTION), "selection")
    try:
        parse_selection(selection)
    except SelectionError as exc:
        ctx.fail("selection", str(exc))

    features = (
        ctx.observables(data["features"], "features") if "features" in data else DEFAULT_FEATURES
    )
    if "log_features" in data:
        log_features = ctx.observables(data["log_features"], "log_features")
        for i, name in enumerate(log_features):
            if name not in features:
                ctx.fail(f"log_features[{i}]", f"{name!r} is not one of `features`")
    else:
        log_features = tuple(name for name in ENERGY_LIKE if name in features)

    split = _split(ctx, data.get("split", {}))
    training, lists = _training(ctx, data.get("training", {}))
    scan = _scan(ctx, data.get("scan", {}))

    training_operators: tuple[str, ...] = ()
    if "training_operator" in data and "training_operators" in data:
        ctx.fail("training_operators", "give either `training_operator` or `training_operators`")
    if "training_operator" in data:
        op = ctx.string(data["training_operator"], "training_operator")
        check_declared(ctx, op, "training_operator", declared)
        training_operators = (op,)
    elif "training_operators" in data:
        ops = ctx.string_list(data["training_operators"], "training_operators")
        if not ops:
            ctx.fail("training_operators", "must not be empty")
        for i, op in enumerate(ops):
            check_declared(ctx, op, f"training_operators[{i}]", declared)
            if op in ops[:i]:
                ctx.fail(f"training_operators[{i}]", f"{op!r} is listed twice")
        training_operators = tuple(ops)
    grid = ModelGrid(
        latent_dims=lists.get("latent_dim", (training.latent_dim,)),
        seeds=lists.get("seed", (training.seed,)),
        training_operators=training_operators,
    )

    if "output_dir" in data:
        out = Path(ctx.string(data["output_dir"], "output_dir")).expanduser()
        output_dir = (out if out.is_absolute() else ctx.base_dir / out).resolve()
    else:
        output_dir = (ctx.base_dir / "vbsad-output" / ctx.path.stem).resolve()

    raw_samples = data.get("samples", [])
    if not isinstance(raw_samples, list):
        ctx.fail(
            "samples", f"expected an array of tables ([[samples]]), got {type_name(raw_samples)}"
        )
    samples = tuple(
        sample_table(ctx, value, i, declared, check_files) for i, value in enumerate(raw_samples)
    )
    raw_reweighted = data.get("reweighted", [])
    if not isinstance(raw_reweighted, list):
        ctx.fail(
            "reweighted",
            f"expected an array of tables ([[reweighted]]), got {type_name(raw_reweighted)}",
        )
    reweighted = tuple(
        reweighted_table(ctx, value, i, declared, check_files)
        for i, value in enumerate(raw_reweighted)
    )
    if not samples and not reweighted:
        ctx.fail("samples", "no samples: add [[samples]] or [[reweighted]] tables")
    check_sources(ctx, samples, reweighted, declared)

    return AnalysisConfig(
        path=ctx.path,
        luminosity_fb=luminosity,
        selection=selection,
        features=features,
        log_features=log_features,
        split=split,
        training=training,
        scan=scan,
        grid=grid,
        output_dir=output_dir,
        samples=samples,
        reweighted=reweighted,
        declared_operators=declared,
        slurm=slurm_table(ctx, data.get("slurm", {})),
    )


def load_config(path: Path, *, check_files: bool = True) -> AnalysisConfig:
    """Read and validate an analysis config (TOML; schema in the module docstring).

    Args:
        path: the config file.
        check_files: check that every sample file exists and every glob matches (False: only
            resolve the paths, e.g. to inspect a config whose data are elsewhere).

    Raises:
        ConfigError: the file is missing, not valid TOML, or violates the schema; the message
            names the file and the key path.
    """
    resolved = Path(path).expanduser().resolve()
    ctx = TomlValues(resolved)
    try:
        data = tomllib.loads(resolved.read_text(encoding="utf-8"))
    except FileNotFoundError:
        ctx.fail("", "config file not found")
    except IsADirectoryError:
        ctx.fail("", "is a directory, not a config file (TOML)")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.fail("", f"cannot read the config file: {exc}")
    except tomllib.TOMLDecodeError as exc:
        ctx.fail("", f"invalid TOML: {exc}")
    return _parse(data, ctx, check_files)
