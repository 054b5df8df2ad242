"""One build: every stage of a definition, then the image files, all or nothing.

Everything is made in a temporary directory next to the outputs (`OUTPUT/.NAME.build-*`);
only when the last stage, the SquashFS, the SIF and `%test` succeeded are the results renamed
into place (`OUTPUT/NAME/`, `NAME.sqfs`, `NAME.sif`, then `NAME.sif.sha256`). On any failure,
or SIGTERM / Ctrl-C, the temporary directory is removed after making sure nothing is mounted
below it (mounts live in `%post`'s own namespace; leftovers are unmounted, and the tree is
never deleted while something is still mounted in it), and an output directory that this
build created is removed again.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from . import artifacts, metadata, rootfs as rootfs_ops
from .definition import Definition, Stage
from .rootfs import BuildError, HostBinds

Log = Callable[[str], None]
REQUIRED_PROGRAMS = (
    "debootstrap",
    "unshare",
    "chroot",
    "mount",
    "umount",
    "cp",
    "dpkg",
    "mksquashfs",
    "siftool",
    "setpriv",
    "ch-run",
)


@dataclass(frozen=True)
class BuildOptions:
    """What to build and where.

    `context`: the directory relative `%files` sources are taken from (Apptainer: the
    current directory). `test_user`: who runs `%test` (None: do not run it).
    """

    output_dir: Path
    name: str
    context: Path
    cache_dir: Path
    binds: HostBinds
    test_user: str | None = "nobody"


@dataclass
class BuildReport:
    """The outputs, their sizes (bytes) and how long each step took (seconds)."""

    image_dir: Path
    squashfs: Path
    sif: Path
    checksum: Path
    sha256: str
    sizes: dict[str, int] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)
    base_from_cache: list[bool] = field(default_factory=list)


def require_root() -> None:
    if os.geteuid() != 0:
        raise BuildError(
            "building an image from a definition needs root (debootstrap, chroot and mounts), "
            "as `apptainer build` does: run it as root (e.g. `sudo make image`)"
        )


def require_programs() -> None:
    missing = [p for p in REQUIRED_PROGRAMS if shutil.which(p) is None]
    if missing:
        raise BuildError(
            f"missing programs: {', '.join(missing)}; install Debian's debootstrap "
            "squashfs-tools siftool charliecloud-runtime squashfuse (`make system-deps`)"
        )


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt for the duration, so that cleanups run."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Timer:
    def __init__(self, report_timings: list[tuple[str, float]], log: Log) -> None:
        self.timings = report_timings
        self.log = log

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.log(f"==> {name}")
        begin = time.monotonic()
        try:
            yield
        finally:
            seconds = time.monotonic() - begin
            self.timings.append((name, seconds))
            self.log(f"<== {name}: {seconds:.1f} s")


def _still_needed(definition: Definition, after: int) -> set[str]:
    """Stages that a `%files from` of a stage after index `after` copies from."""
    return {
        section.from_stage
        for stage in definition.stages[after + 1 :]
        for section in stage.files
        if section.from_stage is not None
    }


def _install(work_files: list[tuple[Path, Path]], output_dir: Path, log: Log) -> None:
    """Rename the finished outputs into place (a directory replaces the old one whole)."""
    for source, target in work_files:
        if source.is_dir():
            old = None
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=output_dir))
                target.rename(old / target.name)
            source.rename(target)
            if old is not None:
                shutil.rmtree(old)
        else:
            os.replace(source, target)
        log(f"wrote {target}")


class _Build:
    """The state of one build in its temporary directory `work`."""

    def __init__(
        self, definition: Definition, options: BuildOptions, report: BuildReport, log: Log
    ) -> None:
        self.definition = definition
        self.options = options
        self.report = report
        self.log = log
        self.timer = _Timer(report.timings, log)
        self.architecture = rootfs_ops.host_architecture()
        self.roots: dict[str, Path] = {}

    def stage(self, stage: Stage, work: Path) -> Path:
        """Bootstrap, `%files`, `%post` and metadata of one stage; its tree."""
        tree = work / "stages" / stage.name
        options, log = self.options, self.log
        with self.timer.step(f"stage {stage.name}: base ({stage.os_version})"):
            key = rootfs_ops.BaseKey(
                stage.os_version, self.architecture, stage.mirror_url, stage.include
            )
            base, cached = rootfs_ops.cached_base(key, options.cache_dir, log)
            self.report.base_from_cache.append(cached)
            rootfs_ops.copy_tree(base, tree, log)
            rootfs_ops.make_skeleton(tree)
        with self.timer.step(f"stage {stage.name}: %files"):
            for section in stage.files:
                if section.from_stage is not None:
                    source = self.roots[section.from_stage]
                    rootfs_ops.copy_files_from_stage(section, source, tree, log)
            for section in stage.files:
                if section.from_stage is None:
                    rootfs_ops.copy_files_from_host(section, tree, options.context, log)
        if stage.post is not None:
            with self.timer.step(f"stage {stage.name}: %post"):
                rootfs_ops.run_post(stage, tree, work / "session", options.binds, log)
        metadata.insert_metadata(self.definition, stage, tree, self.architecture, log)
        return tree

    def run(self, work: Path) -> list[tuple[Path, Path]]:
        """Every stage, then the image files in `work`; returns (made, final path) pairs."""
        definition, name, report = self.definition, self.options.name, self.report
        for index, stage in enumerate(definition.stages):
            self.roots[stage.name] = self.stage(stage, work)
            needed = _still_needed(definition, index)
            for done in [n for n in self.roots if n not in needed and n != stage.name]:
                shutil.rmtree(self.roots.pop(done))
        image = work / name
        self.roots.pop(definition.final.name).rename(image)
        variables = rootfs_ops.evaluated_environment(image)
        metadata.write_charliecloud_environment(image, variables)
        squashfs, sif = work / f"{name}.sqfs", work / f"{name}.sif"
        checksum = work / f"{name}.sif.sha256"
        with self.timer.step("squashfs"):
            artifacts.make_squashfs(image, squashfs, self.log)
        with self.timer.step("sif"):
            meta = image / metadata.SINGULARITY_D
            artifacts.make_sif(
                sif,
                definition=meta / "Singularity",
                labels=meta / "labels.json",
                squashfs=squashfs,
                architecture=self.architecture,
                log=self.log,
            )
            report.sha256 = artifacts.write_checksum(sif, checksum)
        if self.options.test_user is not None:
            with self.timer.step(f"%test (unprivileged: {self.options.test_user})"):
                artifacts.run_test(image, self.options.test_user, self.log)
        return [
            (image, report.image_dir),
            (squashfs, report.squashfs),
            (sif, report.sif),
            (checksum, report.checksum),
        ]


def build_image(definition: Definition, options: BuildOptions, log: Log = print) -> BuildReport:
    """Build `definition` into `options.output_dir` (see the module docstring)."""
    require_root()
    require_programs()
    output_dir = options.output_dir.resolve()
    created_output = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    name = options.name
    report = BuildReport(
        image_dir=output_dir / name,
        squashfs=output_dir / f"{name}.sqfs",
        sif=output_dir / f"{name}.sif",
        checksum=output_dir / f"{name}.sif.sha256",
        sha256="",
    )
    work = Path(tempfile.mkdtemp(prefix=f".{name}.build-", dir=output_dir))
    succeeded = False
    try:
        with _terminate_as_interrupt():
            work.chmod(0o755)  # %test runs unprivileged on the image inside it
            made = _Build(definition, options, report, log).run(work)
            report.checksum.unlink(missing_ok=True)  # the old image's, until the new is in
            _install(made, output_dir, log)
            succeeded = True
    finally:
        _clean_up(work, output_dir if created_output and not succeeded else None, log)
    report.sizes = {
        "directory": artifacts.tree_size(report.image_dir),
        "squashfs": report.squashfs.stat().st_size,
        "sif": report.sif.stat().st_size,
    }
    return report


def _clean_up(work: Path, created_output: Path | None, log: Log) -> None:
    """Remove the temporary tree, but never while anything is mounted below it."""
    left = rootfs_ops.unmount_all_under(work, log)
    if left:
        raise BuildError(
            f"still mounted below {work} after the build: {', '.join(left)}; "
            "not deleting it (unmount them, then remove the directory)"
        )
    shutil.rmtree(work, ignore_errors=True)
    if created_output is not None:
        with suppress(OSError):
            created_output.rmdir()
