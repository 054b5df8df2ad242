"""The `[slurm]` table: the resources of the batch jobs that `vbsad submit` renders.

Nothing site-specific is built in: without a `[slurm]` table the jobs ask for nothing beyond
what each stage needs (one task, or the scan's MPI ranks) and take the site's defaults for
partition, account, time and memory. Schema::

    [slurm]                         # defaults for the job of every stage
    partition = "short"             # sbatch --partition
    account = "myproject"           # --account
    qos = "normal"                  # --qos
    time = "02:00:00"               # --time (Slurm's formats: "MM", "HH:MM:SS", "D-HH")
    mem = "4G"                      # --mem, per node (Slurm's units: K, M, G, T)
    cpus_per_task = 1               # --cpus-per-task (integer >= 1)
    ntasks = 1                      # --ntasks: MPI ranks of the MPI stages (scan; train,
                                    # score with jobs = "mpi")
    array_throttle = 20             # at most this many array tasks at once (--array=...%N)
    extra = ["--constraint=cpu"]    # more sbatch options, written as #SBATCH lines
    grace_s = 120                   # USR1 this many seconds before the time limit (preemption
                                    # or the end of the allocation): the step stops cleanly,
                                    # the job is requeued and resumes
    files_per_task = 1              # preprocess: input files per array task
    jobs = "array"                  # train and score: one array task per model of the grid
                                    # ("array") or one MPI job over the grid ("mpi")
    container = "vbsad.sif"         # run every job in this image (containers/README.md),
                                    # relative to the config file; default: no container
    container_exec = "apptainer exec {image} vbsad"
                                    # how a job runs vbsad in the image; {image} is its path,
                                    # {join} becomes "--join" in MPI steps ("" otherwise) for
                                    # Charliecloud: "ch-run {join} --set-env {image} -- vbsad"

    [slurm.train]                   # per stage (preprocess, datasets, train, score, scan,
    time = "08:00:00"               # report): any resource key above, overriding the default
    mem = "8G"

Command-line options of `vbsad submit` override both.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

__all__ = [
    "CONTAINER_FIELDS",
    "DEFAULT_CONTAINER_EXEC",
    "JOB_MODES",
    "RESOURCE_KEYS",
    "SLURM_STAGES",
    "JobMode",
    "SlurmConfig",
    "SlurmResources",
    "SlurmStage",
]

SlurmStage = Literal["preprocess", "datasets", "train", "score", "scan", "report"]
SLURM_STAGES: tuple[SlurmStage, ...] = get_args(SlurmStage)
"""The stages of an analysis as jobs, in dependency order."""

JobMode = Literal["array", "mpi"]
JOB_MODES: tuple[JobMode, ...] = get_args(JobMode)


@dataclass(frozen=True, slots=True)
class SlurmResources:
    """What one job asks of Slurm; None (or empty) leaves it to the site's default.

    Attributes:
        partition: `--partition`.
        account: `--account`.
        qos: `--qos`.
        time: `--time`, in Slurm's formats ("30", "02:00:00", "1-00:00:00").
        mem: `--mem` per node, with Slurm's unit suffix ("4G").
        cpus_per_task: `--cpus-per-task`.
        ntasks: `--ntasks` (MPI ranks).
        array_throttle: at most this many array tasks at once (`--array=...%N`).
        extra: more sbatch options, each written as one `#SBATCH` line.
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    mem: str | None = None
    cpus_per_task: int | None = None
    ntasks: int | None = None
    array_throttle: int | None = None
    extra: tuple[str, ...] = ()

    def over(self, base: SlurmResources) -> SlurmResources:
        """These resources where set, `base`'s elsewhere (`extra`: base's lines, then these)."""
        merged = {
            f.name: getattr(self, f.name)
            if getattr(self, f.name) is not None
            else getattr(base, f.name)
            for f in dataclasses.fields(self)
            if f.name != "extra"
        }
        return SlurmResources(**merged, extra=(*base.extra, *self.extra))


DEFAULT_CONTAINER_EXEC = "apptainer exec {image} vbsad"
"""How a job runs vbsad in its container by default (Apptainer; `{image}`: the image)."""
CONTAINER_FIELDS = ("image", "join")
"""The placeholders of `container_exec`."""

RESOURCE_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SlurmResources))
"""The keys of a resources table ([slurm] and [slurm.<stage>])."""


@dataclass(frozen=True, slots=True)
class SlurmConfig:
    """The `[slurm]` table (see the module docstring).

    Attributes:
        defaults: resources of every stage's job.
        stages: per stage, the resources that override `defaults`.
        grace_s: seconds between USR1 and the time limit.
        files_per_task: preprocess: input files per array task.
        jobs: train and score as one array task per model ("array") or one MPI job ("mpi").
        container: the image every job runs in (None: the submitting Python's environment).
        container_exec: the command that runs vbsad in the image (`{image}`, `{join}`).
    """

    defaults: SlurmResources = field(default_factory=SlurmResources)
    stages: Mapping[SlurmStage, SlurmResources] = field(default_factory=dict)
    grace_s: int = 120
    files_per_task: int = 1
    jobs: JobMode = "array"
    container: Path | None = None
    container_exec: str = DEFAULT_CONTAINER_EXEC

    def container_command(self, *, mpi: bool) -> str | None:
        """How a job runs vbsad in the container (None without one): `container_exec` with
        the image's path, and "--join" for `{join}` in an MPI step."""
        if self.container is None:
            return None
        return self.container_exec.format(
            image=shlex.quote(str(self.container)), join="--join" if mpi else ""
        ).replace("  ", " ")

    def resources(self, stage: SlurmStage) -> SlurmResources:
        """The resources of `stage`'s job: its own table over the defaults."""
        own = self.stages.get(stage)
        return self.defaults if own is None else own.over(self.defaults)
