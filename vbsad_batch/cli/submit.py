"""`vbsad submit`: the analysis as Slurm jobs, one per stage, chained by afterok."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from vbsad_batch.config import AnalysisConfig

from vbsad_batch.cli.options import EXIT_OK, PROG, UsageError, config_file
from vbsad_batch.config.slurm import RESOURCE_KEYS, SLURM_STAGES

__all__ = ["add_parser", "parse_resources", "run"]


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommand to `subparsers` (`common`: the options every subcommand has)."""
    parser = subparsers.add_parser(
        "submit",
        parents=[common],
        help="run the analysis on a Slurm cluster: one batch job per stage, chained",
        description=(
            "Submit the stages of the analysis that are not done as Slurm batch jobs, each "
            "starting when the one before it ended well (--dependency=afterok, and a failed "
            "job cancels its dependents): preprocess (an array job: one task per "
            "[slurm] files_per_task LHE inputs), datasets, train and score (array jobs: one "
            'task per model of the grid; or MPI jobs with [slurm] jobs = "mpi"), scan (an '
            "MPI job, srun --mpi=pmi2 with [slurm] ntasks ranks), report. Resources come from "
            "the config's [slurm] table (see vbsad_batch/config/slurm.py), overridden by "
            "--resource. Writes <output_dir>/slurm/: the scripts (readable; sbatch runs them "
            "by hand too), logs/ and submission.json (job ids, command line, version). Jobs "
            "are requeued on preemption (USR1 before the time limit) and resume. Run it again "
            "after a failure: only what is not done is submitted; `vbsad status` shows where "
            "each stage stands."
        ),
        epilog=(
            f"examples: {PROG} submit ana.toml --dry-run; {PROG} submit ana.toml --resource "
            "partition=short --resource train.time=04:00:00 --resource scan.ntasks=8"
        ),
    )
    parser.add_argument("config", type=config_file, metavar="CONFIG", help="analysis config (TOML)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SLURM_STAGES,
        metavar="STAGE",
        help=f"submit only these stages ({', '.join(SLURM_STAGES)}), still chained in order",
    )
    parser.add_argument(
        "--resource",
        action="append",
        default=[],
        metavar="[STAGE.]KEY=VALUE",
        help=f"a job resource over the config's [slurm] table, for every stage or one: keys "
        f"{', '.join(RESOURCE_KEYS)} (e.g. time=02:00:00, train.mem=8G, scan.ntasks=4); "
        "repeatable",
    )
    parser.add_argument(
        "--command",
        default=None,
        metavar="CMD",
        help="how the jobs run vbsad on the compute nodes (default: this Python, "
        f"'{sys.executable} -m vbsad_batch'; e.g. 'apptainer exec vbsad.sif vbsad')",
    )
    parser.add_argument(
        "--container",
        type=Path,
        metavar="IMAGE",
        help="run every job in this image (a SIF, squashfs or directory; containers/README.md), "
        "over the config's [slurm] container; its SHA-256 goes into submission.json",
    )
    parser.add_argument(
        "--container-exec",
        metavar="TEMPLATE",
        help="how a job runs vbsad in the image: {image} is its path, {join} becomes --join in "
        "MPI steps (default: the config's [slurm] container_exec, else 'apptainer exec "
        "{image} vbsad'; Charliecloud: 'ch-run {join} --set-env {image} -- vbsad')",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="submit every selected stage whole, done or not (each still skips what is "
        "current when it runs)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the scripts and the sbatch command lines; write and submit nothing",
    )
    parser.set_defaults(handler=run)


def parse_resources(config_path: Path, items: list[str]) -> dict[str, dict[str, Any]]:
    """`--resource [STAGE.]KEY=VALUE` items -> {stage, or "" for every stage: {key: value}}.

    Raises:
        UsageError: an unknown stage or key, or a value Slurm would not take.
    """
    from vbsad_batch.config.schema import ConfigError  # noqa: PLC0415
    from vbsad_batch.config.slurm_table import parse_resource  # noqa: PLC0415
    from vbsad_batch.config.toml_values import TomlValues  # noqa: PLC0415

    values: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        stage, dot, key = name.rpartition(".")
        if not sep or (dot and stage not in SLURM_STAGES) or key not in RESOURCE_KEYS:
            raise UsageError(
                f"--resource {item!r}: expected [STAGE.]KEY=VALUE with STAGE one of "
                f"{', '.join(SLURM_STAGES)} and KEY one of {', '.join(RESOURCE_KEYS)}"
            )
        raw: object = text
        if key in ("cpus_per_task", "ntasks", "array_throttle"):
            raw = int(text) if text.isdigit() else text
        try:
            value = parse_resource(TomlValues(config_path), key, raw, "--resource")
        except ConfigError as exc:
            raise UsageError(str(exc).split(": ", 1)[-1]) from exc
        values.setdefault(stage, {})[key] = value
    return values


def run(args: argparse.Namespace, console: Console | None) -> int:
    from vbsad_batch.config import load_config  # noqa: PLC0415 - polars only for this command
    from vbsad_batch.config.slurm import SlurmResources  # noqa: PLC0415
    from vbsad_batch.workflow.job_scripts import render  # noqa: PLC0415
    from vbsad_batch.workflow.submission import (  # noqa: PLC0415
        plan_submission,
        script_name,
        slurm_directory,
        submit,
    )

    config = load_config(args.config)
    resources = parse_resources(config.path, args.resource)
    everywhere = SlurmResources(**resources.pop("", {}))
    if resources:  # per-stage overrides join the config's per-stage tables
        stages = dict(config.slurm.stages)
        for stage in SLURM_STAGES:
            if stage in resources:
                own = SlurmResources(**resources[stage])
                stages[stage] = own.over(stages.get(stage, SlurmResources()))
        slurm = dataclasses.replace(config.slurm, stages=stages)
        config = dataclasses.replace(config, slurm=slurm)
    config = _with_container(config, args.container, args.container_exec)
    plan = plan_submission(
        config, only=args.only, overrides=everywhere, command=args.command, force=args.force
    )
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for stage, why in plan.done.items():
        print(f"{stage}: {why}, not submitted")
    if not plan.jobs:
        print("nothing to submit: every selected stage is done")
        return EXIT_OK
    directory = slurm_directory(config)
    if args.dry_run:
        for index, job in enumerate(plan.jobs, start=1):
            path = directory / script_name(index, job)
            after = ":".join(f"<{s} job id>" for s in job.after)
            dependency = f" --dependency=afterok:{after} --kill-on-invalid-dep=yes" if after else ""
            print(f"# --- {path} ({job.stage}: {job.reason}) ---")
            print(render(job.script))
            print(f"# sbatch --parsable{dependency} {shlex.quote(str(path))}\n")
        print(f"dry run: {len(plan.jobs)} job(s), nothing written or submitted")
        return EXIT_OK
    submitted = submit(plan, argv=[PROG, *args.argv])
    for job in plan.jobs:
        print(f"{job.stage}: job {submitted.job_ids[job.stage]} ({job.reason})")
    follow = f"{PROG} status {shlex.quote(str(config.path))}"
    print(f"scripts and logs in {directory}; follow with: {follow}")
    return EXIT_OK


def _with_container(
    config: AnalysisConfig, image: Path | None, template: str | None
) -> AnalysisConfig:
    """The config with --container / --container-exec over its [slurm] table.

    Raises:
        UsageError: a template without {image} or with another placeholder.
    """
    from vbsad_batch.config.schema import ConfigError  # noqa: PLC0415
    from vbsad_batch.config.slurm_table import check_container_exec  # noqa: PLC0415
    from vbsad_batch.config.toml_values import TomlValues  # noqa: PLC0415

    changes: dict[str, Any] = {}
    if image is not None:
        changes["container"] = image.expanduser().resolve()
    if template is not None:
        try:
            check_container_exec(TomlValues(config.path), template, "--container-exec")
        except ConfigError as exc:
            raise UsageError(str(exc).split(": ", 1)[-1]) from exc
        changes["container_exec"] = template
    if not changes:
        return config
    return dataclasses.replace(config, slurm=dataclasses.replace(config.slurm, **changes))
