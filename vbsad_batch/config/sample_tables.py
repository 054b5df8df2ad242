"""The sources of events in a config: its `[[samples]]` and `[[reweighted]]` tables.

`sample_table` and `reweighted_table` validate one table each into `SampleConfig` /
`ReweightedConfig`; `check_sources` checks them together: one source per component, an SM
source for EFT samples, every declared operator provided, distinct names and files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from vbsad_batch.config.near_miss import did_you_mean
from vbsad_batch.config.schema import Component, ReweightedConfig, SampleConfig
from vbsad_batch.config.toml_values import TomlValues, check_declared, cross_section

__all__ = ["check_sources", "reweighted_table", "sample_table"]

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


_SAMPLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def _sample_name(ctx: TomlValues, value: object, key: str) -> str:
    """A sample's name: it names files and table rows, so letters, digits and _ . + - only,
    starting with a letter or digit (no path separator, no control character)."""
    name = ctx.string(value, key)
    if not name:
        ctx.fail(key, "must not be empty")
    if not _SAMPLE_NAME.fullmatch(name):
        ctx.fail(
            key,
            f"invalid sample name {name!r}: use letters, digits and _ . + - (starting with a "
            "letter or digit; no path separator, space or control character)",
        )
    return name


def sample_table(
    ctx: TomlValues, value: object, index: int, declared: tuple[str, ...], check_files: bool
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
        check_declared(ctx, op, f"{ops_key}[{i}]" if ops_key.endswith("s") else ops_key, declared)
    if component == "mix" and ops[0] == ops[1]:
        ctx.fail(ops_key, f"a 'mix' sample needs two different operators, got {ops[0]!r} twice")
    operators = tuple(sorted(ops))
    name_default = "_".join((component, *operators))
    name = _sample_name(ctx, table.get("name", name_default), f"{where}.name")
    if "files" not in table:
        ctx.fail(f"{where}.files", "missing")
    files = ctx.files(table["files"], f"{where}.files", check=check_files)
    xsec = None
    if "xsec_pb" in table:
        xsec = cross_section(
            ctx, table["xsec_pb"], f"{where}.xsec_pb", positive=component in ("sm", "quad")
        )
    return SampleConfig(
        name=name,
        component=component,  # type: ignore[arg-type]  # checked against Component above
        operators=operators,
        files=files,
        xsec_pb=xsec,
    )


def _template(ctx: TomlValues, text: str, op: str, key: str) -> str:
    if "{op}" not in text:
        ctx.fail(key, f"template {text!r} must contain '{{op}}'")
    return text.replace("{op}", op)


def reweighted_table(
    ctx: TomlValues, value: object, index: int, declared: tuple[str, ...], check_files: bool
) -> ReweightedConfig:
    where = f"reweighted[{index}]"
    table = ctx.table(value, where)
    ctx.check_keys(table, _REWEIGHTED_KEYS, where)
    name = _sample_name(ctx, table.get("name", f"reweighted{index}"), f"{where}.name")
    if "files" not in table:
        ctx.fail(f"{where}.files", "missing")
    files = ctx.files(table["files"], f"{where}.files", check=check_files)
    xsec = None
    if "xsec_pb" in table:
        xsec = cross_section(ctx, table["xsec_pb"], f"{where}.xsec_pb", positive=True)
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
            check_declared(ctx, op, key, declared)
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
                check_declared(ctx, op, f"{where}.operators[{i}]", declared)
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


def check_sources(
    ctx: TomlValues,
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
