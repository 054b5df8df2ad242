"""Reading the `[slurm]` table of a config into `SlurmConfig` (schema: `vbsad_batch.config.slurm`).

Values are checked only as far as this tool can know them (an integer >= 1, a string that
is not empty, a time or memory in Slurm's syntax); whether a partition or account exists is
the site's business, and `sbatch` says so when it is not.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vbsad_batch.config.near_miss import did_you_mean
from vbsad_batch.config.slurm import (
    CONTAINER_FIELDS,
    DEFAULT_CONTAINER_EXEC,
    JOB_MODES,
    RESOURCE_KEYS,
    SLURM_STAGES,
    SlurmConfig,
    SlurmResources,
    SlurmStage,
)
from vbsad_batch.config.toml_values import TomlValues

__all__ = ["SLURM_TIME", "check_container_exec", "parse_resource", "slurm_table"]

SLURM_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$|^\d+-\d+$|^UNLIMITED$|^INFINITE$")
"""Slurm's --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (and unlimited)."""
_SLURM_MEM = re.compile(r"^\d+[KMGT]?$")
_SETTINGS = ("grace_s", "files_per_task", "jobs", "container", "container_exec")


def parse_resource(ctx: TomlValues, key: str, value: object, where: str) -> Any:
    """One resource value of `[slurm]` or `[slurm.<stage>]`, checked."""
    name = f"{where}.{key}"
    if key in ("cpus_per_task", "ntasks", "array_throttle"):
        return ctx.integer(value, name, 1)
    if key == "extra":
        lines = ctx.string_list(value, name, allow_single=True)
        for i, line in enumerate(lines):
            if not line.startswith("-"):
                ctx.fail(f"{name}[{i}]", f"an sbatch option starts with '-', got {line!r}")
        return tuple(lines)
    text = ctx.string(value, name).strip()
    if not text:
        ctx.fail(name, "must not be empty (leave the key out for the site's default)")
    if key == "time" and not SLURM_TIME.match(text):
        ctx.fail(name, f"{text!r} is not a Slurm time limit (e.g. '30', '02:00:00', '1-00:00')")
    if key == "mem" and not _SLURM_MEM.match(text):
        ctx.fail(name, f"{text!r} is not a Slurm memory size (e.g. '4000', '4G')")
    return text


def _resources(ctx: TomlValues, table: Mapping[str, Any], where: str) -> SlurmResources:
    values = {k: parse_resource(ctx, k, v, where) for k, v in table.items() if k in RESOURCE_KEYS}
    return SlurmResources(**values)


def slurm_table(ctx: TomlValues, value: object) -> SlurmConfig:
    """The `[slurm]` table (absent: every default)."""
    table = ctx.table(value, "slurm")
    allowed = (*RESOURCE_KEYS, *_SETTINGS, *SLURM_STAGES)
    ctx.check_keys(table, allowed, "slurm")
    stages: dict[SlurmStage, SlurmResources] = {}
    for stage in SLURM_STAGES:
        if stage in table:
            where = f"slurm.{stage}"
            own = ctx.table(table[stage], where)
            ctx.check_keys(own, RESOURCE_KEYS, where)
            stages[stage] = _resources(ctx, own, where)
    jobs = ctx.string(table.get("jobs", "array"), "slurm.jobs")
    if jobs not in JOB_MODES:
        ctx.fail(
            "slurm.jobs",
            f"{jobs!r} is not one of {', '.join(JOB_MODES)}{did_you_mean(jobs, JOB_MODES)}",
        )
    container = None
    if "container" in table:
        image = Path(ctx.string(table["container"], "slurm.container")).expanduser()
        container = image if image.is_absolute() else (ctx.base_dir / image).resolve()
    container_exec = ctx.string(
        table.get("container_exec", DEFAULT_CONTAINER_EXEC), "slurm.container_exec"
    )
    check_container_exec(ctx, container_exec, "slurm.container_exec")
    return SlurmConfig(
        defaults=_resources(ctx, table, "slurm"),
        stages=stages,
        grace_s=ctx.integer(table.get("grace_s", 120), "slurm.grace_s", 1),
        files_per_task=ctx.integer(table.get("files_per_task", 1), "slurm.files_per_task", 1),
        jobs=jobs,  # checked against JOB_MODES above
        container=container,
        container_exec=container_exec,
    )


def check_container_exec(ctx: TomlValues, text: str, key: str) -> None:
    """`container_exec` must name the image and no other placeholder than {image}, {join}."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        ctx.fail(key, f"{text!r}: {exc}")
    unknown = sorted(fields - set(CONTAINER_FIELDS))
    if unknown:
        ctx.fail(key, f"unknown placeholder {{{unknown[0]}}}: only {{image}} and {{join}}")
    if "image" not in fields:
        ctx.fail(key, f"{text!r} must contain {{image}}, the image's path")
