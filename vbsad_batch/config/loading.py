"""Loading the analysis config: TOML -> validated `vbsad_batch.config.schema` dataclasses.

Every error raises `ConfigError` with a message ``"<config file>: <key path>: <problem>"``,
for example ``"ana.toml: samples[2].operator: 'cWW' is not declared in `operators`"``; an
unknown key comes with the nearest valid key as a suggestion. Relative paths (sample files,
`output_dir`) are relative to the directory of the config file. The schema is documented in
`vbsad_batch.config.schema`.
"""

from __future__ import annotations

import glob
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn, get_args

from vbsad_batch.config.near_miss import did_you_mean
from vbsad_batch.config.schema import (
    DEFAULT_FEATURES,
    DEFAULT_SELECTION,
    ENERGY_LIKE,
    INPUT_SUFFIXES,
    LATENT_DIM_RANGE,
    SCORE_COLUMNS,
    AnalysisConfig,
    Component,
    ConfigError,
    ModelGrid,
    RegionFrom,
    ReweightedConfig,
    SampleConfig,
    ScanConfig,
    SplitConfig,
    TrainingConfig,
)
from vbsad_batch.config.selection import SelectionError, parse_selection
from vbsad_batch.ingest.lhe import OBSERVABLE_COLUMNS

__all__ = ["load_config"]

_OBSERVABLES: frozenset[str] = frozenset(OBSERVABLE_COLUMNS)
_GLOB_CHARS = frozenset("*?[")
_OPERATOR_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]*$")


# --- validation helpers -----------------------------------------------------------------------


class _Ctx:
    """Raises `ConfigError`s that name the config file and the key path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base_dir = path.parent

    def fail(self, key: str, message: str) -> NoReturn:
        raise ConfigError(f"{self.path}: {key}: {message}" if key else f"{self.path}: {message}")

    def check_keys(self, table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                prefix = f"{where}." if where else ""
                self.fail(
                    f"{prefix}{key}",
                    f"unknown key{did_you_mean(key, allowed)}; valid keys: {', '.join(allowed)}",
                )

    def table(self, value: object, key: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.fail(key, f"expected a table, got {_type_name(value)}")
        return value

    def string(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {_type_name(value)}")
        return value

    def number(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"expected a number, got {_type_name(value)}")
        result = float(value)
        if not math.isfinite(result):
            self.fail(key, f"must be finite, got {result}")
        return result

    def string_list(self, value: object, key: str, *, allow_single: bool = False) -> list[str]:
        if allow_single and isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            what = "a string or a list of strings" if allow_single else "a list of strings"
            self.fail(key, f"expected {what}, got {_type_name(value)}")
        out: list[str] = []
        for i, item in enumerate(value):
            out.append(self.string(item, f"{key}[{i}]"))
        return out

    def observables(self, value: object, key: str) -> tuple[str, ...]:
        names = self.string_list(value, key)
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name not in _OBSERVABLES:
                self.fail(
                    f"{key}[{i}]",
                    f"unknown observable {name!r}{did_you_mean(name, _OBSERVABLES)}; known: "
                    f"{', '.join(OBSERVABLE_COLUMNS)}",
                )
            if name in seen:
                self.fail(f"{key}[{i}]", f"{name!r} is listed twice")
            seen.add(name)
        if not names:
            self.fail(key, "must not be empty")
        return tuple(names)

    def files(self, value: object, key: str, *, check: bool) -> tuple[Path, ...]:
        entries = self.string_list(value, key, allow_single=True)
        if not entries:
            self.fail(key, "no files given")
        found: set[Path] = set()
        for i, entry in enumerate(entries):
            entry_key = f"{key}[{i}]" if isinstance(value, list) else key
            pattern = Path(entry).expanduser()
            if not pattern.is_absolute():
                pattern = self.base_dir / pattern
            text = str(pattern)
            if any(c in _GLOB_CHARS for c in text):
                matches = [Path(m) for m in glob.glob(text, recursive=True)]
                matches = [m for m in matches if m.is_file() and _accepted(m)]
                if not matches:
                    if check:
                        self.fail(
                            entry_key,
                            f"the pattern {entry!r} matches no input file ({text}; accepted: "
                            f"{', '.join(INPUT_SUFFIXES)})",
                        )
                    found.add(pattern.resolve())
                found.update(m.resolve() for m in matches)
                continue
            if not _accepted(pattern):
                self.fail(
                    entry_key,
                    f"{entry!r} is not an accepted input (file name must end with one of "
                    f"{', '.join(INPUT_SUFFIXES)})",
                )
            if check and not pattern.is_file():
                problem = "is not a file" if pattern.exists() else "does not exist"
                self.fail(entry_key, f"{entry!r} {problem} ({pattern})")
            found.add(pattern.resolve())
        return tuple(sorted(found))


def _type_name(value: object) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    return f"{type(value).__name__} ({value!r})"


def _accepted(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in INPUT_SUFFIXES)


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
)
_TRAINING_KEYS = (*(f.name for f in fields(TrainingConfig)), "seeds", "latent_dims")
_SCAN_KEYS = tuple(f.name for f in fields(ScanConfig))
_OPTIMIZERS = ("adam",)
_SPLIT_KEYS = tuple(f.name for f in fields(SplitConfig))
_SAMPLE_KEYS = ("name", "component", "operator", "operators", "files", "xsec_pb")
_REWEIGHTED_KEYS = (
    "name",
    "files",
    "xsec_pb",
    "sm_weight",
    "points",
    "operators",
    "plus",
    "minus",
    "k",
)
_POINT_KEYS = ("plus", "minus", "k")
_SPLIT_TOLERANCE = 1e-9


def _operator_list(ctx: _Ctx, value: object) -> tuple[str, ...]:
    names = ctx.string_list(value, "operators")
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not _OPERATOR_RE.match(name):
            ctx.fail(f"operators[{i}]", f"invalid operator name {name!r}")
        if name in seen:
            ctx.fail(f"operators[{i}]", f"{name!r} is declared twice")
        seen.add(name)
    return tuple(names)


def _check_declared(ctx: _Ctx, op: str, key: str, declared: tuple[str, ...]) -> None:
    if op not in declared:
        if declared:
            hint = did_you_mean(op, declared)
            ctx.fail(key, f"operator {op!r} is not declared in `operators`{hint}")
        ctx.fail(key, f"operator {op!r} is not declared: add `operators = [{op!r}, ...]`")


def _split(ctx: _Ctx, value: object) -> SplitConfig:
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
        ctx.fail("split.seed", f"expected an integer >= 0, got {_type_name(seed)}")
    return SplitConfig(seed=seed, **fractions)


def _integer(ctx: _Ctx, value: object, key: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.fail(key, f"expected an integer, got {_type_name(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"in {minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        ctx.fail(key, f"must be {bounds}, got {value}")
    return value


def _integer_list(
    ctx: _Ctx, value: object, key: str, minimum: int, maximum: int | None = None
) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        ctx.fail(key, f"expected a non-empty list of integers, got {_type_name(value)}")
    numbers = tuple(_integer(ctx, v, f"{key}[{i}]", minimum, maximum) for i, v in enumerate(value))
    for i, number in enumerate(numbers):
        if number in numbers[:i]:
            ctx.fail(f"{key}[{i}]", f"{number} is listed twice")
    return numbers


def _grid_lists(ctx: _Ctx, table: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
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


def _training(ctx: _Ctx, value: object) -> tuple[TrainingConfig, dict[str, tuple[int, ...]]]:
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
            "training.hidden_layers", f"expected a list of integers, got {_type_name(raw_hidden)}"
        )
    if not raw_hidden:
        ctx.fail("training.hidden_layers", "must not be empty")
    hidden = tuple(
        _integer(ctx, width, f"training.hidden_layers[{i}]", 1)
        for i, width in enumerate(raw_hidden)
    )
    low, high = LATENT_DIM_RANGE
    training = TrainingConfig(
        optimizer="adam",
        learning_rate=learning_rate,
        epochs=_integer(ctx, get("epochs"), "training.epochs", 1),
        patience=_integer(ctx, get("patience"), "training.patience", 1),
        batch_size=_integer(ctx, get("batch_size"), "training.batch_size", 1),
        latent_dim=_integer(ctx, get("latent_dim"), "training.latent_dim", low, high),
        hidden_layers=hidden,
        classifier_units=_integer(ctx, get("classifier_units"), "training.classifier_units", 1),
        seed=_integer(ctx, get("seed"), "training.seed", 0),
        **floats,
    )
    return training, lists


def _scan(ctx: _Ctx, value: object) -> ScanConfig:
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
        min_sm_mc_events=_integer(ctx, get("min_sm_mc_events"), "scan.min_sm_mc_events", 1),
        min_sm_yield=min_sm_yield,
        bootstrap_replicas=_integer(ctx, get("bootstrap_replicas"), "scan.bootstrap_replicas", 0),
        bootstrap_chunk=_integer(ctx, get("bootstrap_chunk"), "scan.bootstrap_chunk", 1),
        seed=_integer(ctx, get("seed"), "scan.seed", 0),
        interval_bins=_integer(ctx, get("interval_bins"), "scan.interval_bins", 2),
        curve_points=_integer(ctx, get("curve_points"), "scan.curve_points", 0),
        vae_scores=columns["vae"],
        vae_nn_scores=columns["vae_nn"],
        region_from=region_from,  # type: ignore[arg-type]  # checked against RegionFrom above
    )


def _xsec(ctx: _Ctx, value: object, key: str, *, positive: bool) -> float:
    xsec = ctx.number(value, key)
    if positive and xsec <= 0:
        ctx.fail(key, f"cross section must be > 0 pb, got {xsec}")
    if xsec == 0:
        ctx.fail(key, "cross section must not be 0 pb")
    return xsec


def _sample(
    ctx: _Ctx, value: object, index: int, declared: tuple[str, ...], check_files: bool
) -> SampleConfig:
    where = f"samples[{index}]"
    table = ctx.table(value, where)
    ctx.check_keys(table, _SAMPLE_KEYS, where)
    if "component" not in table:
        ctx.fail(f"{where}.component", f"missing; one of {', '.join(get_args(Component))}")
    component = ctx.string(table["component"], f"{where}.component")
    components = get_args(Component)
    if component not in components:
        ctx.fail(
            f"{where}.component",
            f"{component!r} is not one of {', '.join(components)}"
            f"{did_you_mean(component, components)}",
        )
    if "operator" in table and "operators" in table:
        ctx.fail(f"{where}.operator", "give either `operator` or `operators`, not both")
    ops_key = f"{where}.operator" if "operator" in table else f"{where}.operators"
    if "operator" in table:
        ops = [ctx.string(table["operator"], ops_key)]
    elif "operators" in table:
        ops = ctx.string_list(table["operators"], ops_key, allow_single=True)
    else:
        ops = []
    expected = {"sm": 0, "lin": 1, "quad": 1, "mix": 2}[component]
    if len(ops) != expected:
        what = {0: "no operator", 1: "one `operator`", 2: "two `operators`"}[expected]
        ctx.fail(ops_key, f"a {component!r} sample takes {what}, got {len(ops)}")
    for i, op in enumerate(ops):
        _check_declared(ctx, op, f"{ops_key}[{i}]" if ops_key.endswith("s") else ops_key, declared)
    if component == "mix" and ops[0] == ops[1]:
        ctx.fail(ops_key, f"a 'mix' sample needs two different operators, got {ops[0]!r} twice")
    operators = tuple(sorted(ops))
    name_default = "_".join((component, *operators))
    name = ctx.string(table.get("name", name_default), f"{where}.name")
    if not name:
        ctx.fail(f"{where}.name", "must not be empty")
    if "files" not in table:
        ctx.fail(f"{where}.files", "missing")
    files = ctx.files(table["files"], f"{where}.files", check=check_files)
    xsec = None
    if "xsec_pb" in table:
        xsec = _xsec(
            ctx, table["xsec_pb"], f"{where}.xsec_pb", positive=component in ("sm", "quad")
        )
    return SampleConfig(
        name=name,
        component=component,  # type: ignore[arg-type]  # checked against Component above
        operators=operators,
        files=files,
        xsec_pb=xsec,
    )


def _template(ctx: _Ctx, text: str, op: str, key: str) -> str:
    if "{op}" not in text:
        ctx.fail(key, f"template {text!r} must contain '{{op}}'")
    return text.replace("{op}", op)


def _reweighted(
    ctx: _Ctx, value: object, index: int, declared: tuple[str, ...], check_files: bool
) -> ReweightedConfig:
    where = f"reweighted[{index}]"
    table = ctx.table(value, where)
    ctx.check_keys(table, _REWEIGHTED_KEYS, where)
    name = ctx.string(table.get("name", f"reweighted{index}"), f"{where}.name")
    if not name:
        ctx.fail(f"{where}.name", "must not be empty")
    if "files" not in table:
        ctx.fail(f"{where}.files", "missing")
    files = ctx.files(table["files"], f"{where}.files", check=check_files)
    xsec = None
    if "xsec_pb" in table:
        xsec = _xsec(ctx, table["xsec_pb"], f"{where}.xsec_pb", positive=True)
    if "sm_weight" not in table:
        ctx.fail(f"{where}.sm_weight", "missing: the weight id at c = 0")
    sm_weight = ctx.string(table["sm_weight"], f"{where}.sm_weight")
    template_keys = [k for k in ("operators", "plus", "minus", "k") if k in table]
    points: dict[str, tuple[str, str, float]] = {}
    if "points" in table:
        if template_keys:
            ctx.fail(
                f"{where}.{template_keys[0]}",
                "give either `points` or the templates (`plus`, `minus`, `k`), not both",
            )
        point_tables = ctx.table(table["points"], f"{where}.points")
        for op, spec in point_tables.items():
            key = f"{where}.points.{op}"
            _check_declared(ctx, op, key, declared)
            spec_table = ctx.table(spec, key)
            ctx.check_keys(spec_table, _POINT_KEYS, key)
            for needed in _POINT_KEYS:
                if needed not in spec_table:
                    ctx.fail(f"{key}.{needed}", "missing")
            k = ctx.number(spec_table["k"], f"{key}.k")
            if k <= 0:
                ctx.fail(f"{key}.k", f"must be > 0, got {k}")
            points[op] = (
                ctx.string(spec_table["plus"], f"{key}.plus"),
                ctx.string(spec_table["minus"], f"{key}.minus"),
                k,
            )
    else:
        for needed in ("plus", "minus", "k"):
            if needed not in table:
                ctx.fail(
                    f"{where}.{needed}",
                    "missing: give `points.<op> = {plus, minus, k}` or the templates "
                    "`plus`, `minus` (with '{op}') and `k`",
                )
        if "operators" in table:
            ops = ctx.string_list(table["operators"], f"{where}.operators")
            for i, op in enumerate(ops):
                _check_declared(ctx, op, f"{where}.operators[{i}]", declared)
        else:
            ops = list(declared)
        plus = ctx.string(table["plus"], f"{where}.plus")
        minus = ctx.string(table["minus"], f"{where}.minus")
        k = ctx.number(table["k"], f"{where}.k")
        if k <= 0:
            ctx.fail(f"{where}.k", f"must be > 0, got {k}")
        for op in ops:
            points[op] = (
                _template(ctx, plus, op, f"{where}.plus"),
                _template(ctx, minus, op, f"{where}.minus"),
                k,
            )
    if not points:
        ctx.fail(f"{where}.points", "no operator points given")
    for op, (plus_id, minus_id, _) in points.items():
        ids = {sm_weight, plus_id, minus_id}
        if len(ids) != 3:
            ctx.fail(
                f"{where}.points.{op}",
                f"the weight ids at 0, +k, -k must differ, got {sm_weight!r}, {plus_id!r}, "
                f"{minus_id!r}",
            )
    return ReweightedConfig(
        name=name,
        files=files,
        xsec_pb=xsec,
        sm_weight=sm_weight,
        points=dict(sorted(points.items())),
    )


def _check_sources(
    ctx: _Ctx,
    samples: Sequence[SampleConfig],
    reweighted: Sequence[ReweightedConfig],
    declared: tuple[str, ...],
) -> None:
    """One source per component, an SM source for EFT samples, every declared op provided."""
    sources: dict[tuple[str, tuple[str, ...]], str] = {}

    def claim(component: str, ops: tuple[str, ...], key: str) -> None:
        previous = sources.get((component, ops))
        if previous is not None:
            what = component + (f" {'/'.join(ops)}" if ops else "")
            ctx.fail(
                key,
                f"a second source of {what} (the first is {previous}); put all files of one "
                "component into one sample's `files`",
            )
        sources[(component, ops)] = key

    for i, sample in enumerate(samples):
        claim(sample.component, sample.operators, f"samples[{i}].component")
    for i, rw in enumerate(reweighted):
        claim("sm", (), f"reweighted[{i}]")
        for op in rw.points:
            claim("lin", (op,), f"reweighted[{i}].points.{op}")
            claim("quad", (op,), f"reweighted[{i}].points.{op}")
    if ("sm", ()) not in sources:
        for i, sample in enumerate(samples):
            if sample.component != "sm":
                ctx.fail(
                    f"samples[{i}].component",
                    f'a {sample.component!r} sample needs an SM sample (component = "sm"), '
                    "and there is none",
                )
    provided = {op for _, ops in sources for op in ops}
    for i, op in enumerate(declared):
        if op not in provided:
            ctx.fail(f"operators[{i}]", f"operator {op!r} is declared but no sample provides it")
    names: dict[str, str] = {}
    labelled = [(s.name, f"samples[{i}].name") for i, s in enumerate(samples)]
    labelled += [(r.name, f"reweighted[{i}].name") for i, r in enumerate(reweighted)]
    for name, key in labelled:
        if name in names:
            ctx.fail(key, f"sample name {name!r} is already used by {names[name]}")
        names[name] = key
    files: dict[Path, str] = {}
    for prefix, entries in [(f"samples[{i}]", s.files) for i, s in enumerate(samples)] + [
        (f"reweighted[{i}]", r.files) for i, r in enumerate(reweighted)
    ]:
        for path in entries:
            if path in files and files[path] != prefix:
                ctx.fail(f"{prefix}.files", f"{path} is also an input of {files[path]}")
            files[path] = prefix


def _parse(data: Mapping[str, Any], ctx: _Ctx, check_files: bool) -> AnalysisConfig:
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
        _check_declared(ctx, op, "training_operator", declared)
        training_operators = (op,)
    elif "training_operators" in data:
        ops = ctx.string_list(data["training_operators"], "training_operators")
        if not ops:
            ctx.fail("training_operators", "must not be empty")
        for i, op in enumerate(ops):
            _check_declared(ctx, op, f"training_operators[{i}]", declared)
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
            "samples", f"expected an array of tables ([[samples]]), got {_type_name(raw_samples)}"
        )
    samples = tuple(
        _sample(ctx, value, i, declared, check_files) for i, value in enumerate(raw_samples)
    )
    raw_reweighted = data.get("reweighted", [])
    if not isinstance(raw_reweighted, list):
        ctx.fail(
            "reweighted",
            f"expected an array of tables ([[reweighted]]), got {_type_name(raw_reweighted)}",
        )
    reweighted = tuple(
        _reweighted(ctx, value, i, declared, check_files) for i, value in enumerate(raw_reweighted)
    )
    if not samples and not reweighted:
        ctx.fail("samples", "no samples: add [[samples]] or [[reweighted]] tables")
    _check_sources(ctx, samples, reweighted, declared)

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
    ctx = _Ctx(resolved)
    try:
        data = tomllib.loads(resolved.read_text(encoding="utf-8"))
    except FileNotFoundError:
        ctx.fail("", "config file not found")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.fail("", f"cannot read the config file: {exc}")
    except tomllib.TOMLDecodeError as exc:
        ctx.fail("", f"invalid TOML: {exc}")
    return _parse(data, ctx, check_files)
