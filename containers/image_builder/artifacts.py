"""From a finished root file system to the files a site runs, and `%test` on them.

* SquashFS: `mksquashfs DIR IMAGE.sqfs -noappend -comp zstd -Xcompression-level 3` (level 3:
  about a tenth of the default level's time for a few percent more bytes). Charliecloud's
  `ch-run` runs it directly; it is also the SIF's system partition.
* SIF: `siftool new`, then the definition (data type 1, Deffile), `labels.json` (3, Labels)
  and the SquashFS as the primary system partition (4, `--parttype 2 --partfs 1`).
* `IMAGE.sif.sha256`: `sha256sum` format, written last.
* `%test`: `/.singularity.d/actions/test` (the environment files sourced, then the test
  script) in `ch-run` as an unprivileged user on the read-only image, with a clean
  environment, as `apptainer test` runs it.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
from collections.abc import Callable
from pathlib import Path

from .rootfs import BuildError, run

Log = Callable[[str], None]

#: siftool's codes for the architectures Debian names.
SIF_ARCHITECTURES = {
    "i386": 1,
    "amd64": 2,
    "armhf": 3,
    "arm64": 4,
    "ppc64el": 6,
    "mips64el": 10,
    "s390x": 11,
    "riscv64": 12,
}


def make_squashfs(rootfs: Path, output: Path, log: Log) -> None:
    processors = str(max(1, os.cpu_count() or 1))
    command = ["mksquashfs", str(rootfs), str(output), "-noappend", "-comp", "zstd"]
    command += ["-Xcompression-level", "3", "-processors", processors, "-no-progress"]
    run(command, log, "mksquashfs")


def make_sif(
    output: Path, *, definition: Path, labels: Path, squashfs: Path, architecture: str, log: Log
) -> None:
    if architecture not in SIF_ARCHITECTURES:
        raise BuildError(f"no SIF architecture code for Debian's {architecture}")
    output.unlink(missing_ok=True)
    run(["siftool", "new", str(output)], log, "siftool new")
    run(["siftool", "add", "--datatype", "1", str(output), str(definition)], log, "siftool add")
    run(["siftool", "add", "--datatype", "3", str(output), str(labels)], log, "siftool add")
    partition = ["--datatype", "4", "--parttype", "2", "--partfs", "1"]
    partition += ["--partarch", str(SIF_ARCHITECTURES[architecture])]
    run(["siftool", "add", *partition, str(output), str(squashfs)], log, "siftool add")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksum(path: Path, output: Path) -> str:
    """`HEX  NAME` (sha256sum's format, checkable with `sha256sum -c` next to the image)."""
    hexdigest = sha256_of(path)
    output.write_text(f"{hexdigest}  {path.name}\n")
    return hexdigest


def tree_size(root: Path) -> int:
    """Bytes in the files under `root` (each hard-linked inode once; symlinks as links)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            info = os.lstat(os.path.join(directory, name))
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def unprivileged(user: str) -> tuple[list[str], dict[str, str]]:
    """The command prefix that drops root to `user` (util-linux `setpriv`: its uid, its
    primary group, no supplementary groups) and a clean environment for it (ch-run needs
    `$USER`)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise BuildError(f"no user {user!r} to run %test as (see --test-user)") from None
    if entry.pw_uid == 0:
        raise BuildError("%test must run unprivileged: --test-user may not be root")
    prefix = [
        "setpriv",
        f"--reuid={entry.pw_uid}",
        f"--regid={entry.pw_gid}",
        "--clear-groups",
        "--",
    ]
    env = {
        "USER": entry.pw_name,
        "LOGNAME": entry.pw_name,
        "HOME": "/tmp",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }
    return prefix, env


def run_test(image: Path, user: str, log: Log) -> None:
    """Run the image's `%test` (see the module docstring); a failure is a BuildError."""
    if shutil.which("ch-run") is None:
        raise BuildError("ch-run is missing: install Debian's charliecloud-runtime")
    if not (image / ".singularity.d" / "test").exists() and image.is_dir():
        log("%test: the image has none")
        return
    prefix, env = unprivileged(user)
    command = [*prefix, "ch-run", "--cd=/", str(image), "--", "/.singularity.d/actions/test"]
    run(command, log, f"%test (ch-run as {user}, read-only image)", env=env)
