"""Root file systems: the debootstrapped base (cached), `%files`, `%post` in a chroot.

What each step does, as `apptainer build` does it for a `Bootstrap: debootstrap` stage:

* base: `debootstrap --variant=minbase --exclude=... --include=apt,INCLUDE --arch=ARCH
  OSVERSION DIR MIRRORURL`, then Apptainer's skeleton (`/.singularity.d/{env,actions,libs}`,
  empty `/etc/hosts` and `/etc/resolv.conf` as bind points). The debootstrapped tree is cached
  outside the checkout (`$XDG_CACHE_HOME/vbsad_batch/image-base/`, keyed by suite,
  architecture, mirror and package lists) and copied (`cp -a --reflink=auto`) per stage;
* `%files from STAGE`: copied out of an earlier stage's tree keeping symlinks inside
  directories (only the named path itself is dereferenced), before the host's `%files`;
* `%files`: `cp -fLr SOURCE DEST` from the build context (globs expanded, symlinks
  dereferenced, parent directories created, a DEST ending in `/` is a directory);
* `%post`: written to `/.post.script` and run as `/bin/sh -ex /.post.script` (or `%post -c
  SHELL`) by `chroot` in private mount and PID namespaces (`unshare --mount --pid`: when the
  build stops, every process `%post` started goes with it) with `/proc`, `/sys`
  (read-only) and `/dev` mounted, a clean environment (`APPTAINER_ENVIRONMENT`,
  `APPTAINER_LABELS`), and copies of the host's `/etc/resolv.conf` and `/etc/hosts` bound in.
  Builder-specific, nothing of it stays in the image: the host's `/etc/ssl/certs` is bound in
  read-only at `/.build.certs` with `PIP_CERT` pointing at its bundle (pip behind this site's
  TLS proxy), and the
  host's pip cache is bound at `/root/.cache/pip` (a rebuild does not download TensorFlow
  again). The mounts live only in that namespace: they vanish with its last process, even if
  the builder is killed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .definition import FilesSection, Script, Stage

Log = Callable[[str], None]

#: Packages Apptainer's debootstrap agent always leaves out / adds.
DEBOOTSTRAP_EXCLUDE = ("openssl", "udev", "debconf-i18n", "e2fsprogs")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENVIRONMENT_FILE = "/.singularity.d/env/91-environment.sh"
LABELS_FILE = "/.build.labels"
#: Where %post sees the host's CA certificates (removed after %post).
CERTIFICATES_MOUNT = "/.build.certs"
#: Passed from the builder's environment into %post (the builder host's network setup).
PASSED_THROUGH = (
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "TERM",
)


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


def run(command: Sequence[str], log: Log, what: str, env: Mapping[str, str] | None = None) -> None:
    """Run `command` with its output going to ours; a non-zero exit is a BuildError
    naming `what` failed."""
    log(f"+ {shlex.join(command)}")
    result = subprocess.run(list(command), env=env, check=False)
    if result.returncode != 0:
        raise BuildError(f"{what} failed (exit status {result.returncode}): {shlex.join(command)}")


def host_architecture() -> str:
    """Debian's name for this machine's architecture (amd64, arm64, ...)."""
    result = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise BuildError("cannot tell the Debian architecture: `dpkg --print-architecture` failed")
    return result.stdout.strip()


def default_cache_dir() -> Path:
    """`${XDG_CACHE_HOME:-$HOME/.cache}/vbsad_batch/image-base`: outside any checkout, so
    that clean clones (CI) reuse the debootstrapped bases."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "vbsad_batch" / "image-base"


def default_pip_cache() -> Path:
    """The host's pip cache (pip's own default for this user, or `PIP_CACHE_DIR`)."""
    if os.environ.get("PIP_CACHE_DIR"):
        return Path(os.environ["PIP_CACHE_DIR"])
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "pip"


# --------------------------------------------------------------------------- the base


@dataclass(frozen=True)
class BaseKey:
    """What a debootstrapped base depends on."""

    suite: str
    architecture: str
    mirror: str
    include: tuple[str, ...]

    @property
    def directory_name(self) -> str:
        payload = json.dumps(
            {
                "suite": self.suite,
                "arch": self.architecture,
                "mirror": self.mirror,
                "include": sorted(self.include),
                "exclude": DEBOOTSTRAP_EXCLUDE,
                "variant": "minbase",
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
        return f"{self.suite}-{self.architecture}-{digest}"


def cached_base(key: BaseKey, cache_dir: Path, log: Log) -> tuple[Path, bool]:
    """The debootstrapped root file system for `key` (debootstrap it into the cache first
    if missing); returns (path, whether it came from the cache). A half-made base never
    appears under its final name: it is made in a temporary directory and renamed."""
    final = cache_dir / key.directory_name
    if (final / "rootfs").is_dir():
        log(f"base: reusing {final}")
        return final / "rootfs", True
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key.directory_name}.", dir=cache_dir))
    try:
        rootfs = work / "rootfs"
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--exclude={','.join(DEBOOTSTRAP_EXCLUDE)}",
            f"--include={','.join(('apt', *key.include))}",
            f"--arch={key.architecture}",
            key.suite,
            str(rootfs),
            key.mirror,
        ]
        run(command, log, f"debootstrap of {key.suite}")
        (work / "base.json").write_text(
            json.dumps(
                {"suite": key.suite, "arch": key.architecture, "include": list(key.include)},
                indent=2,
            )
            + "\n"
        )
        try:
            work.rename(final)
        except OSError:
            if not (final / "rootfs").is_dir():  # not a concurrent build that won the race
                raise
        log(f"base: cached in {final}")
        return final / "rootfs", False
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def copy_tree(source: Path, destination: Path, log: Log) -> None:
    """`cp -a --reflink=auto SOURCE/. DESTINATION` (a reflink copy where the file system
    can, a plain copy elsewhere)."""
    destination.mkdir(parents=True, exist_ok=True)
    run(
        ["cp", "-a", "--reflink=auto", f"{source}/.", str(destination)],
        log,
        f"copy of {source}",
    )


# --------------------------------------------------------------------------- skeleton

_SOURCE_ENV = (
    "for script in /.singularity.d/env/*.sh; do\n"
    '    if [ -f "$script" ]; then\n'
    '        . "$script"\n'
    "    fi\n"
    "done\n"
)
_ENVIRONMENT_HEADER = "#!/bin/sh\n# Custom environment shell code should follow\n\n"
_SKELETON_FILES = {
    # Apptainer's action scripts: source the environment files in order, then act.
    ".singularity.d/actions/exec": f'#!/bin/sh\n\n{_SOURCE_ENV}\nexec "$@"\n',
    ".singularity.d/actions/run": (
        f"#!/bin/sh\n\n{_SOURCE_ENV}\n"
        'if [ -x /.singularity.d/runscript ]; then\n    exec /.singularity.d/runscript "$@"\nfi\n'
        'echo "No runscript in this image, running /bin/sh"\nexec /bin/sh "$@"\n'
    ),
    ".singularity.d/actions/test": (
        f"#!/bin/sh\n\n{_SOURCE_ENV}\n"
        'if [ -x /.singularity.d/test ]; then\n    exec /.singularity.d/test "$@"\nfi\n'
        'echo "No test in this image"\nexec /bin/sh -c true\n'
    ),
    ".singularity.d/actions/shell": (
        f"#!/bin/sh\n\n{_SOURCE_ENV}\n"
        'if [ -x /bin/bash ]; then\n    exec /bin/bash --norc "$@"\nfi\nexec /bin/sh "$@"\n'
    ),
    ".singularity.d/env/01-base.sh": "#!/bin/sh\n",
    ".singularity.d/env/90-environment.sh": _ENVIRONMENT_HEADER,
    ".singularity.d/env/91-environment.sh": _ENVIRONMENT_HEADER,
    ".singularity.d/env/99-base.sh": (
        "#!/bin/sh\n"
        "# Site libraries bound at run time (e.g. a host MPI) go to /.singularity.d/libs.\n"
        'if [ -z "$LD_LIBRARY_PATH" ]; then\n'
        '    LD_LIBRARY_PATH="/.singularity.d/libs"\n'
        "else\n"
        '    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"\n'
        "fi\n"
        'PS1="Apptainer> "\n'
        "export LD_LIBRARY_PATH PS1\n"
    ),
    ".singularity.d/runscript": "#!/bin/sh\n",
}


def make_skeleton(rootfs: Path) -> None:
    """Apptainer's base layout on top of a bootstrapped tree (its `makeBaseEnv`)."""
    rootfs.chmod(0o755)
    for directory in (
        ".singularity.d/libs",
        ".singularity.d/actions",
        ".singularity.d/env",
        "dev",
        "proc",
        "root",
        "var/tmp",
        "tmp",
        "etc",
        "sys",
        "home",
    ):
        (rootfs / directory).mkdir(parents=True, exist_ok=True)
    for name in ("etc/hosts", "etc/resolv.conf"):  # bind points, empty in the image
        path = rootfs / name
        if path.is_symlink():
            path.unlink()
        path.write_text("")
        path.chmod(0o644)
    for name, content in _SKELETON_FILES.items():
        path = rootfs / name
        path.write_text(content)
        path.chmod(0o755)
    for link, target in (
        ("environment", ".singularity.d/env/90-environment.sh"),
        ("singularity", ".singularity.d/runscript"),
    ):
        if not (rootfs / link).is_symlink() and not (rootfs / link).exists():
            (rootfs / link).symlink_to(target)


# --------------------------------------------------------------------------- paths


def secure_join(root: Path, path: str, keep_slash: bool = True) -> str:
    """`root` + `path` with every symlink on the way resolved as if `root` were `/` (an
    absolute link points inside `root`, `..` stops at `root`): a path that cannot leave
    the image tree. The last component is resolved too; a trailing slash is kept."""
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise BuildError(f"too many symlinks resolving {path} in {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    joined = str(root.joinpath(*resolved))
    return f"{joined}/" if keep_slash and path.endswith("/") else joined


def _make_parent(destination: str) -> None:
    """Apptainer's makeParentDir: a missing DEST ending in `/` is made as a directory,
    otherwise only its parent is made."""
    if os.path.lexists(destination):
        return
    if destination.endswith("/"):
        os.makedirs(destination.rstrip("/"), mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(destination), mode=0o755, exist_ok=True)


def copy_files_from_host(section: FilesSection, rootfs: Path, context: Path, log: Log) -> None:
    """One host `%files` section: `cp -fLr SOURCE DEST` per line and glob match."""
    for copy in section.copies:
        pattern = copy.source if os.path.isabs(copy.source) else str(context / copy.source)
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if os.path.lexists(m)]
        if not matches:
            raise BuildError(
                f"%files (line {copy.line}): {copy.source} does not exist "
                f"(relative sources are taken from {context})"
            )
        for match in matches:
            relative = os.path.relpath(match, context) if not os.path.isabs(copy.source) else match
            destination = secure_join(rootfs, copy.destination or relative)
            _make_parent(destination)
            run(["cp", "-fLr", match, destination], log, f"%files (line {copy.line})")


def copy_files_from_stage(section: FilesSection, source_root: Path, rootfs: Path, log: Log) -> None:
    """One `%files from STAGE` section: the named paths copied out of the earlier stage's
    tree, symlinks inside directories kept (Apptainer's CopyFromStage)."""
    for copy in section.copies:
        pattern = str(source_root) + "/" + copy.source.lstrip("/")
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if os.path.lexists(m)]
        if not matches:
            raise BuildError(
                f"%files from {section.from_stage} (line {copy.line}): {copy.source} "
                "does not exist in that stage"
            )
        for match in matches:
            relative = "/" + os.path.relpath(match, source_root)
            source = secure_join(source_root, relative, keep_slash=False)
            destination = secure_join(rootfs, copy.destination or relative)
            _make_parent(destination)
            if os.path.isdir(destination):
                destination = os.path.join(destination, os.path.basename(relative))
            run(
                ["cp", "-a", "--no-target-directory", source, destination],
                log,
                f"%files from {section.from_stage} (line {copy.line})",
            )


# --------------------------------------------------------------------------- %post


@dataclass(frozen=True)
class HostBinds:
    """What the builder binds into `%post` besides Apptainer's own (see the module doc)."""

    certificates: Path | None
    pip_cache: Path | None


def script_command(script: Script, path: str) -> list[str]:
    """Apptainer's interpreter line for a script section: `/bin/sh -ex PATH`, or with
    `-c SHELL ARGS` the script run by that shell (`/bin/sh -ex -c "SHELL ARGS PATH"`)."""
    args = script.args.split()
    if args and args[0] == "-c":
        return ["/bin/sh", "-ex", "-c", " ".join([*args[1:], path])]
    return ["/bin/sh", "-ex", path]


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` in this process' mount namespace."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def unmount_all_under(path: Path, log: Log) -> list[str]:
    """Lazily unmount anything still mounted at or below `path` (deepest first); return
    what could not be unmounted."""
    for point in sorted(mounts_under(path), key=len, reverse=True):
        log(f"unmounting leftover {point}")
        subprocess.run(["umount", "--lazy", point], check=False)
    return mounts_under(path)


@contextmanager
def _mount_points(rootfs: Path, points: Sequence[tuple[str, bool]]) -> Iterator[None]:
    """Create the missing mount points (`(path, is_directory)`) and remove again, after,
    those that were created here and are still empty."""
    created: list[Path] = []
    try:
        for point, is_directory in points:
            target = rootfs / point.lstrip("/")
            missing = []
            parent = target if is_directory else target.parent
            while not parent.exists():
                missing.append(parent)
                parent = parent.parent
            for directory in reversed(missing):
                directory.mkdir(mode=0o755)
                created.append(directory)
            if not is_directory and not target.exists():
                target.touch()
                created.append(target)
        yield
    finally:
        for item in reversed(created):
            try:
                if item.is_dir():
                    item.rmdir()
                elif item.stat().st_size == 0:
                    item.unlink()
            except OSError:
                pass


def run_post(stage: Stage, rootfs: Path, session_dir: Path, binds: HostBinds, log: Log) -> None:
    """Run the stage's `%post` in `rootfs` (see the module docstring)."""
    assert stage.post is not None
    script_path = rootfs / ".post.script"
    script_path.write_text(stage.post.text + "\n")
    script_path.chmod(0o755)
    session_dir.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, str, bool]] = []  # (host path, image path, read-only)
    for name in ("resolv.conf", "hosts"):
        host_file = Path("/etc") / name
        if host_file.is_file():
            copy = session_dir / name
            copy.write_text(host_file.read_text() + "\n")
            staged.append((str(copy), f"/etc/{name}", False))
    env = {
        "PATH": DEFAULT_PATH,
        "HOME": "/root",
        "LANG": "C",
        "APPTAINER_ENVIRONMENT": ENVIRONMENT_FILE,
        "SINGULARITY_ENVIRONMENT": ENVIRONMENT_FILE,
        "APPTAINER_LABELS": LABELS_FILE,
        "SINGULARITY_LABELS": LABELS_FILE,
    }
    env.update({k: os.environ[k] for k in PASSED_THROUGH if os.environ.get(k)})
    directories: list[tuple[str, str, bool]] = []
    if binds.certificates is not None:
        # A mount point of its own: packages that %post installs (ca-certificates) write to
        # /etc/ssl/certs, which must stay theirs.
        directories.append((str(binds.certificates), CERTIFICATES_MOUNT, True))
        bundle = binds.certificates / "ca-certificates.crt"
        if bundle.is_file():
            env["PIP_CERT"] = f"{CERTIFICATES_MOUNT}/ca-certificates.crt"
    if binds.pip_cache is not None:
        binds.pip_cache.mkdir(parents=True, exist_ok=True)
        directories.append((str(binds.pip_cache), "/root/.cache/pip", False))
    root = shlex.quote(str(rootfs))
    lines = [
        f"mount -t proc proc {root}/proc",
        f"mount -t sysfs -o ro sysfs {root}/sys",
        f"mount --rbind /dev {root}/dev",
    ]
    for host, inside, read_only in staged + directories:
        options = "bind,ro" if read_only else "bind"
        lines.append(f"mount -o {options} {shlex.quote(host)} {root}{shlex.quote(inside)}")
    assignments = [f"{k}={v}" for k, v in env.items()]
    inner = ["chroot", str(rootfs), "/usr/bin/env", "-i", *assignments]
    inner += script_command(stage.post, "/.post.script")
    lines.append("exec " + shlex.join(inner))
    points = [(inside, False) for _, inside, _ in staged]
    points += [(inside, True) for _, inside, _ in directories]
    try:
        with _mount_points(rootfs, points):
            run(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--pid",
                    "--kill-child",
                    "--",
                    "/bin/sh",
                    "-ec",
                    "\n".join(lines),
                ],
                log,
                f"%post of stage {stage.name} (line {stage.post.line})",
            )
    finally:
        script_path.unlink(missing_ok=True)
        shutil.rmtree(session_dir, ignore_errors=True)


def evaluated_environment(rootfs: Path) -> dict[str, str]:
    """The variables the image's environment files set or change, evaluated in the image
    by its /bin/sh from a clean environment (for Charliecloud's `/ch/environment`)."""
    probe = (
        'for script in /.singularity.d/env/*.sh; do [ -f "$script" ] && . "$script"; done; '
        "exec /usr/bin/env -0"
    )
    base = {"PATH": DEFAULT_PATH, "HOME": "/root"}
    result = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--kill-child",
            "--",
            "chroot",
            str(rootfs),
            "/usr/bin/env",
            "-i",
            *(f"{k}={v}" for k, v in base.items()),
            "/bin/sh",
            "-c",
            probe,
        ],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise BuildError(
            "evaluating the image's %environment failed: "
            + result.stderr.decode(errors="replace").strip()
        )
    variables = {}
    for item in result.stdout.decode().split("\0"):
        name, sep, value = item.partition("=")
        if not sep or name in {"PWD", "OLDPWD", "SHLVL", "_", "PS1"}:
            continue
        if base.get(name) != value and "\n" not in value:
            variables[name] = value
    return variables
