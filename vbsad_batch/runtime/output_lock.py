"""One writer per output: an advisory lock file, held for the whole of a write.

Two `vbsad` commands that write the same output at the same time (two `vbsad run` of one
config, a `--force` re-run beside a running job, two array tasks given the same shard) would
otherwise both do all the work and overwrite each other's files. `hold(lock_path, ...)` makes
them take turns: it takes an exclusive `flock` on ``lock_path`` for the block, and a second
writer of the same output either stops at once with `OutputBusyError`, naming the holder, or
queues behind it.

Which outputs lock which file is decided by the callers, not here: every unit of the stage
contract locks a hidden file beside what it owns for the whole of its write
(`vbsad_batch.runtime.stage.StageUnit.lock_path`: ``out/.datasets.lock``,
``shards/.x.manifest.json.lock``), so units that share a directory (the shards of one
`preprocess` folder, written side by side by Slurm array tasks) never exclude each other;
`vbsad run` also holds ``<output_dir>/.vbsad-run.lock`` for the whole analysis
(`vbsad_batch.pipeline`). Readers never lock: a command that finds an output up to date uses
it without waiting.

**The holder.** After taking the lock, the holder writes one line of JSON into the lock file:
host, PID, Slurm job (if any), the UTC time it took the lock and its command line
(`Holder`). A second writer reads it, best effort, for its message, e.g.::

    out/datasets is being written by `vbsad run ana.toml` (PID 1234 on node12, since
    2026-12-07 10:02 UTC); wait for it or stop it (or queue behind it: VBSAD_LOCK_WAIT=SECONDS)

The holder empties the file before releasing the lock, so its content names a live holder
(except after a SIGKILL, until the next writer replaces it).

**Waiting.** `hold(..., wait=seconds)`; by default the environment variable
``VBSAD_LOCK_WAIT`` decides: unset or 0, stop at once; a number of seconds, wait at most that
long; ``inf``, wait without limit. An environment variable reaches the worker processes of a
stage and the job scripts without any plumbing; `waiting_for_writers` sets it for a block
(`vbsad run --wait`, `--wait-timeout SECONDS`). A waiter polls (every 50 ms at first, then
every second) and logs once whom it waits for.

**No stale locks.** The kernel (or the file server) drops a `flock` when its process ends,
SIGKILL included, so there is nothing to clean up: a lock file left behind is an empty or
outdated file that the next writer simply locks. The lock file is never an output (no manifest
lists it) and its name matches no temporary-file pattern, so no clean-up removes it. Never
delete a lock file by hand while its writer runs: the next writer would lock a new file of the
same name beside the live one (a writer that finds its lock file replaced after locking it
locks the new one instead, but the old holder is not stopped).

**Safety.** The lock file is opened with ``O_NOFOLLOW``: a symbolic link planted under its name
is refused (`LockFileError`), never followed to a file elsewhere, and so is anything that is
not a regular file. ``O_CLOEXEC`` keeps the lock out of child processes, so a subprocess that
outlives its parent never holds it. In one process the lock is re-entrant per thread (a stage
that locks its unit around the key check, then writes through `StageUnit.writing`, which locks
again); another thread of the same process waiting for it is treated like another process.

**File systems.** On a local file system `flock` is exact. Linux NFS clients (since 2.6.12)
turn `flock` into a whole-file POSIX lock on the server (NLM for NFSv3, the NFSv4 protocol's
own locks), so writers on different nodes exclude each other; with the mount options
``nolock`` or ``local_lock=flock|all`` the locks are local to each node, which no program can
detect: then only writers on the same node exclude each other. A POSIX lock belongs to the
process and goes with the first close of any descriptor of its file, so this module never opens
a lock file it holds a second time (the re-entrant path reuses the open one), and it needs a
writable descriptor (EBADF otherwise: treated as no locking). A node that crashes keeps its
NFSv3 locks until it reboots (NFSv4: until its lease expires, ~90 s); only then may the lock
file be deleted by hand. Lustre grants cluster-wide `flock` with the client mount option
``flock``, node-local ones with ``localflock`` (undetectable, as for NFS), and fails every
`flock` call with the default ``noflock``. Where `flock` fails like that (ENOLCK,
EOPNOTSUPP, ENOSYS, ...), this module logs one warning per file system, naming the directory
and the mount option to ask for, and the write goes on unlocked: the locks are a guard against
mistakes, and a site without file locking must still be able to run its analysis. Where the
lock file cannot be created because nothing can be written there (a read-only or full file
system, no permission), there is no write to guard either: the block runs unlocked and the
first write reports the real error.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import enum
import errno
import json
import logging
import math
import os
import platform
import shlex
import stat
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.platform != "win32":
    import fcntl

__all__ = [
    "LOCK_WAIT_ENV",
    "Holder",
    "LockFileError",
    "OutputBusyError",
    "hold",
    "parse_wait",
    "wait_from_environment",
    "waiting_for_writers",
]

logger = logging.getLogger(__name__)

LOCK_WAIT_ENV = "VBSAD_LOCK_WAIT"
"""Environment variable: how long a writer waits for another writer of the same output, s
(unset or 0: not at all; ``inf``: without limit)."""

_POLL_FIRST_S = 0.05
_POLL_MAX_S = 1.0
_HOLDER_MAX_BYTES = 4096
_COMMAND_MAX_CHARS = 300
_PACKAGE = __name__.split(".", 1)[0]

# flock errors that mean "no file locking here" rather than "held by another process".
# EBADF: an NFS client emulates flock with a POSIX write lock, which needs a writable file
# descriptor; a lock file of another user opened read-only cannot get one.
_NO_LOCKING = frozenset(
    {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL, errno.EBADF}
)
# Errors creating the lock file that mean nothing can be written in its directory.
_UNWRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


# --- errors -------------------------------------------------------------------------------------


class LockFileError(RuntimeError):
    """The lock file cannot be used: a symbolic link or not a regular file. The message names
    it; nothing was written through it."""


class OutputBusyError(RuntimeError):
    """Another process (or another thread of this one) is writing the output.

    `str(error)` is the one-line message: the output, the holder, what to do.

    Attributes:
        target: the output, as named in the message (a directory or a file).
        lock_path: the lock file.
        holder: who holds the lock, if its lock file could be read.
        waited_s: how long this writer waited before giving up (its limit), s (0: it did
            not wait).
        hint: the advice that ends the message.
    """

    def __init__(
        self,
        target: str,
        lock_path: Path,
        holder: Holder | None,
        *,
        waited_s: float = 0.0,
        hint: str | None = None,
    ) -> None:
        self.target = target
        self.lock_path = Path(lock_path)
        self.holder = holder
        self.waited_s = waited_s
        self.hint = _default_hint(waited_s) if hint is None else hint
        who = holder.describe() if holder is not None else "another process"
        if waited_s > 0:
            text = f"{target} is still being written by {who} after {waited_s:g} s of waiting"
        else:
            text = f"{target} is being written by {who}"
        super().__init__(f"{text}; {self.hint}")

    def with_hint(self, hint: str) -> OutputBusyError:
        """The same error with other advice (e.g. a command's own option for waiting)."""
        return OutputBusyError(
            self.target, self.lock_path, self.holder, waited_s=self.waited_s, hint=hint
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword arguments would be lost by the default exception pickling, and the error
        # must travel back from worker processes (`vbsad preprocess --jobs N`).
        return (
            _rebuild_busy_error,
            (self.target, self.lock_path, self.holder, self.waited_s, self.hint),
        )


def _rebuild_busy_error(
    target: str, lock_path: Path, holder: Holder | None, waited_s: float, hint: str
) -> OutputBusyError:
    return OutputBusyError(target, lock_path, holder, waited_s=waited_s, hint=hint)


def _default_hint(waited_s: float) -> str:
    if waited_s > 0:
        return f"wait longer ({LOCK_WAIT_ENV}=SECONDS, or inf for no limit) or stop it"
    return f"wait for it or stop it (or queue behind it: {LOCK_WAIT_ENV}=SECONDS)"


# --- the holder ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock, as its lock file says.

    Attributes:
        host: the node's host name.
        pid: the process id on that host.
        since: when it took the lock, ISO 8601 UTC.
        command: its command line, e.g. "vbsad run ana.toml".
        slurm_job: its Slurm job id (``SLURM_JOB_ID``), if it runs in a Slurm job.
    """

    host: str
    pid: int
    since: str
    command: str
    slurm_job: str | None = None

    @classmethod
    def of_this_process(cls) -> Holder:
        """This process, now."""
        return cls(
            host=platform.node() or "unknown host",
            pid=os.getpid(),
            since=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            command=_command_line(sys.argv),
            slurm_job=os.environ.get("SLURM_JOB_ID") or None,
        )

    def describe(self) -> str:
        """E.g. "`vbsad run ana.toml` (PID 1234 on node12, Slurm job 77, since 2026-12-07
        10:02 UTC)"."""
        where = f"PID {self.pid} on {self.host}"
        if self.slurm_job:
            where += f", Slurm job {self.slurm_job}"
        try:
            when = _dt.datetime.fromisoformat(self.since).astimezone(_dt.UTC)
            where += f", since {when:%Y-%m-%d %H:%M} UTC"
        except ValueError:
            pass
        return f"`{self.command}` ({where})"

    def to_json(self) -> str:
        """One line of JSON, as written into the lock file."""
        fields = {
            "host": self.host,
            "pid": self.pid,
            "since": self.since,
            "command": self.command,
            "slurm_job": self.slurm_job,
        }
        return json.dumps(fields, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        """The holder a lock file names, or None (empty, partly written, not ours)."""
        try:
            fields = json.loads(text)
            return cls(
                host=str(fields["host"]),
                pid=int(fields["pid"]),
                since=str(fields["since"]),
                command=str(fields["command"]),
                slurm_job=None if fields.get("slurm_job") is None else str(fields["slurm_job"]),
            )
        except (ValueError, TypeError, KeyError):
            return None


def _command_line(argv: Sequence[str]) -> str:
    """`argv` as the user would type it: ``python -m vbsad_batch run x`` and the `vbsad`
    script both read "vbsad run x"."""
    if not argv:
        return "python"
    first = Path(argv[0])
    if first.name == "__main__.py" and first.parent.name == _PACKAGE:
        from vbsad_batch.runtime.stage import PROGRAM  # noqa: PLC0415 - stage imports this module

        words = [PROGRAM]
    elif argv[0] == "-c":
        words = ["python", "-c", "..."]
    else:
        words = [first.name]
    text = shlex.join([*words, *argv[1:]])
    if len(text) > _COMMAND_MAX_CHARS:
        text = text[: _COMMAND_MAX_CHARS - 3] + "..."
    return text


# --- waiting ------------------------------------------------------------------------------------


def parse_wait(text: str) -> float:
    """Seconds to wait from a command line or environment value: a number >= 0, or "inf".

    Raises:
        ValueError: anything else.
    """
    try:
        seconds = float(text.strip())
    except ValueError:
        seconds = math.nan
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"expected seconds >= 0 or 'inf', got {text!r}")
    return seconds


def wait_from_environment() -> float:
    """How long to wait for another writer, s, by ``VBSAD_LOCK_WAIT`` (0 when unset).

    Raises:
        ValueError: an invalid value, naming the variable.
    """
    text = os.environ.get(LOCK_WAIT_ENV, "").strip()
    if not text:
        return 0.0
    try:
        return parse_wait(text)
    except ValueError as exc:
        raise ValueError(f"{LOCK_WAIT_ENV}: {exc}") from None


@contextlib.contextmanager
def waiting_for_writers(seconds: float) -> Iterator[None]:
    """For the block, writers wait up to `seconds` (inf: without limit) for each other:
    ``VBSAD_LOCK_WAIT`` is set, so that worker processes started in the block inherit it;
    its old value is restored after."""
    old = os.environ.get(LOCK_WAIT_ENV)
    os.environ[LOCK_WAIT_ENV] = "inf" if math.isinf(seconds) else repr(float(seconds))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(LOCK_WAIT_ENV, None)
        else:
            os.environ[LOCK_WAIT_ENV] = old


# --- the locks of this process ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hold:
    """A lock this process holds: its file descriptor (None: held without a file lock, see the
    module docstring), the owning thread, the holder written into the file."""

    fd: int | None
    thread: int
    holder: Holder


class _Attempt(enum.Enum):
    """The outcomes of one attempt at a lock other than "held by" a readable `Holder`."""

    TAKEN = "taken"  # this thread holds it now
    REPLACED = "replaced"  # the file was replaced between open and flock: try again
    UNKNOWN_HOLDER = "unknown holder"  # held by another, whose lock file is unreadable


_held: dict[str, _Hold] = {}
_held_guard = threading.Lock()
_warned_devices: set[int] = set()


def _registry_key(lock_path: Path) -> str:
    # The directory resolved (two spellings of one directory are one lock), the name not:
    # the file itself must not be a symbolic link.
    return os.path.join(os.path.realpath(lock_path.parent), lock_path.name)


@contextlib.contextmanager
def hold(lock_path: Path, *, target: str, wait: float | None = None) -> Iterator[None]:
    """Hold the exclusive lock `lock_path` for the block (its directory is created if missing).

    Args:
        lock_path: the lock file (created if missing; never a symbolic link).
        target: the output it guards, for messages (e.g. the unit's directory).
        wait: how long to wait for another holder, s (0: not at all, inf: without limit);
            default: ``VBSAD_LOCK_WAIT`` (`wait_from_environment`).

    Raises:
        OutputBusyError: another writer holds it (still, after `wait` seconds).
        LockFileError: `lock_path` is a symbolic link or not a regular file.
        OSError: the lock file cannot be opened or locked for another reason (named).
        ValueError: an invalid ``VBSAD_LOCK_WAIT``.
    """
    lock_path = Path(lock_path)
    key = _registry_key(lock_path)
    with _held_guard:
        mine = _held.get(key)
    if mine is not None and mine.thread == threading.get_ident():
        yield  # re-entered: the outer block releases it
        return
    seconds = wait_from_environment() if wait is None else float(wait)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"wait must be >= 0 seconds, got {wait!r}")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    _acquire(lock_path, key, target, seconds)
    try:
        yield
    finally:
        _release(key)


def _acquire(lock_path: Path, key: str, target: str, wait_s: float) -> None:
    """Take the lock for this thread, waiting up to `wait_s`; register it in `_held`."""
    started = time.monotonic()
    delay = _POLL_FIRST_S
    announced = False
    while True:
        attempt = _try_acquire(lock_path, key)
        if attempt is _Attempt.TAKEN:
            return
        if attempt is _Attempt.REPLACED:
            continue  # lock the file now there
        holder = attempt if isinstance(attempt, Holder) else None
        waited = time.monotonic() - started
        if waited >= wait_s:
            raise OutputBusyError(target, lock_path, holder, waited_s=wait_s)
        if not announced:
            who = holder.describe() if holder is not None else "another process"
            limit = "" if math.isinf(wait_s) else f" (at most {wait_s:g} s)"
            logger.info("waiting for %s: being written by %s%s", target, who, limit)
            announced = True
        time.sleep(min(delay, max(wait_s - waited, 0.0)))
        delay = min(delay * 2, _POLL_MAX_S)


def _try_acquire(lock_path: Path, key: str) -> Holder | _Attempt:
    """One attempt without waiting: the holder if another one holds the lock, else what
    happened (`_Attempt`)."""
    with _held_guard:  # no other thread of this process may lock the same file meanwhile
        other = _held.get(key)
        if other is not None:
            return other.holder
        fd, writable = _open(lock_path)
        if fd is None:  # nothing can be written there: nothing to guard
            logger.debug("%s: cannot be created; not locked", lock_path)
            _held[key] = _Hold(None, threading.get_ident(), Holder.of_this_process())
            return _Attempt.TAKEN
        try:
            locked = _flock(fd, lock_path)
            if locked and not _same_file(fd, lock_path):
                os.close(fd)
                return _Attempt.REPLACED
        except BaseException:
            os.close(fd)
            raise
        if locked is False:
            holder = _read_holder(fd)
            os.close(fd)
            return holder if holder is not None else _Attempt.UNKNOWN_HOLDER
        if locked is None:  # no file locking on this file system: warned, go on unlocked
            os.close(fd)
            fd = None
        me = Holder.of_this_process()
        _held[key] = _Hold(fd, threading.get_ident(), me)
    if fd is not None and writable:
        _write_holder(fd, me)
    return _Attempt.TAKEN


def _release(key: str) -> None:
    with _held_guard:
        mine = _held.pop(key)
    if mine.fd is None:
        return
    try:
        with contextlib.suppress(OSError):
            os.ftruncate(mine.fd, 0)  # a lock file names only a live holder
        with contextlib.suppress(OSError):
            fcntl.flock(mine.fd, fcntl.LOCK_UN)
    finally:
        os.close(mine.fd)


# --- the lock file ------------------------------------------------------------------------------


def _open(lock_path: Path) -> tuple[int | None, bool]:
    """The lock file's descriptor and whether it is writable; (None, False) when it cannot be
    created because nothing can be written in its directory.

    Raises:
        LockFileError: a symbolic link, or not a regular file.
        OSError: any other failure, naming the file.
    """
    flags = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK  # O_NONBLOCK: a planted FIFO
    try:
        fd = os.open(lock_path, flags | os.O_RDWR | os.O_CREAT, 0o666)
        writable = True
    except OSError as exc:
        if exc.errno == errno.ELOOP or lock_path.is_symlink():
            raise LockFileError(
                f"{lock_path}: the lock file is a symbolic link; refusing to follow it "
                "(remove the link: vbsad creates its lock files itself)"
            ) from None
        if exc.errno not in _UNWRITABLE:
            raise OSError(f"{lock_path}: cannot open the lock file ({exc.strerror})") from exc
        if not os.path.lexists(lock_path):
            return None, False
        try:  # another user's lock file: flock needs no write access (locally)
            fd = os.open(lock_path, flags | os.O_RDONLY)
        except OSError:
            return None, False
        writable = False
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise LockFileError(f"{lock_path}: the lock file is not a regular file; remove it")
    return fd, writable


def _flock(fd: int, lock_path: Path) -> bool | None:
    """Try the exclusive lock once: True taken, False held by another, None no file locking
    on this file system (warned once per file system).

    Raises:
        OSError: any other failure, naming the file.
    """
    if sys.platform == "win32":  # no flock: as a file system without locking
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LOCKING:
            raise OSError(f"{lock_path}: cannot lock ({exc.strerror})") from exc
        _warn_no_locking(fd, lock_path, exc)
        return None
    return True


def _warn_no_locking(fd: int, lock_path: Path, exc: OSError) -> None:
    try:
        device = os.fstat(fd).st_dev
    except OSError:
        device = -1
    if device in _warned_devices:
        return
    _warned_devices.add(device)
    logger.warning(
        "%s: file locks (flock) fail on this file system (%s): vbsad commands writing the "
        "same output at the same time are NOT stopped here; run one at a time (Lustre: ask "
        "for the client mount option `flock`; NFS: the server's lock manager, lockd/NLM, "
        "must be reachable)",
        lock_path.parent,
        exc.strerror or errno.errorcode.get(exc.errno or 0, "error"),
    )


def _same_file(fd: int, lock_path: Path) -> bool:
    """Whether `lock_path` still names the file open as `fd` (not deleted or replaced)."""
    try:
        now = os.lstat(lock_path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)


def _write_holder(fd: int, holder: Holder) -> None:
    """Name the holder in its lock file, best effort (it only serves messages)."""
    data = holder.to_json().encode("utf-8")
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)  # other NFS clients read what reached the server


def _read_holder(fd: int) -> Holder | None:
    """The holder a lock file names, best effort."""
    try:
        data = os.pread(fd, _HOLDER_MAX_BYTES, 0)
    except OSError:
        return None
    return Holder.from_json(data.decode("utf-8", errors="replace"))
