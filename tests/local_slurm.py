"""A real, private, single-node Slurm cluster for tests and benchmarks.

`LocalSlurm` starts its own munged, slurmctld and slurmd (Debian's `slurm-wlm` 22.05 and
`munge`; `make system-deps` installs them) with every file under one state directory, nothing
in /etc, and stops them again, whatever happened in between::

    with LocalSlurm(state_dir, cpus=2, memory_mb=4000) as cluster:
        job = cluster.sbatch(script, "--array=0-3%2", cwd=work_dir)
        records = cluster.wait(job, timeout=60)
        assert [r.state for r in records] == ["COMPLETED"] * 4

Clients (sbatch, srun, squeue, scontrol, scancel, sinfo) find the cluster through `SLURM_CONF`
only: run them with `cluster.env` (or `cluster.run(...)`); without `SLURM_CONF` they try DNS
SRV "configless" lookups and fail. Batch jobs inherit that environment (sbatch's default
`--export=ALL`), so `srun` and `scontrol` work inside jobs too.

The module imports nothing from pytest: a benchmark script can use it after putting `tests/`
on `sys.path`.

Job states: where they come from
--------------------------------
There is no slurmdbd (no accounting database, `AccountingStorageType=accounting_storage/none`):
plain `sacct` answers "Slurm accounting storage is disabled" (exit 1). What works:

* the controller's memory, `scontrol show job -o ID`: pending, running and finished jobs, one
  record per started array task (an array's still-pending tasks share one record whose
  `ArrayTaskId` is a range such as `2-3%2`), with `JobState`, `Reason`, `ExitCode`,
  `Restarts`. Finished jobs stay there for `MinJobAge` (300 s), then "Invalid job id";
* the job-completion log, `JobCompType=jobcomp/filetxt` (`cluster.jobcomp_path`), never
  purged: one line each time a job or array task ends, `Key=value` fields. Slurm 22.05 writes
  `JobId` (an array task's own id), `Name`, `JobState`, `StartTime`, `EndTime`, `NodeList`,
  `WorkDir`, `Tres`, `SubmitTime`, `EligibleTime`, for array tasks `ArrayJobId` and
  `ArrayTaskId`, then `DerivedExitCode` and `ExitCode` (`code:signal`); no `Restarts`, no
  `Reason`. A job cancelled before it ran (its dependency failed) gets a line; a requeued job
  gets one line per run under the same id, the requeued run logged as `JobState=PENDING`;
* `sacct --completion` (`-c`) reads that same file (e.g. `sacct -c -o JobID,State,ExitCode`)
  but knows no array fields: it lists array tasks by their own job ids and prints "Unknown
  type ArrayJobId" on stderr. `jobcomp_records()` parses the file directly instead.

`wait()` and `job_states()` merge the two: the completion log's last line per job/task,
overridden by the controller's records while it has them.

Traps (see also shared/RECIPES.md, section Slurm)
--------------------------------------------------
* munged refuses a socket whose parent directories are not all o+x; pytest's tmp dirs are
  0700, so the socket lives in its own 0755 `mkdtemp` dir under /tmp (short: a unix socket
  path has at most 107 bytes).
* `cred_expire=5` (the lowest accepted) in `AuthInfo`: a requeued job starts again only once
  its old credential expired (120 s by default).
* `--kill-on-invalid-dep=yes` on dependent jobs, otherwise a job whose dependency failed stays
  PENDING forever (`DependencyNeverSatisfied`). `LocalSlurm` does not add it for you.
* `srun --mpi=pmi2` with the mpich wheel; plain `srun -n 2` gives two size-1 MPI worlds, exit 0.
* `scontrol shutdown` stops the daemons but not the jobs' `slurmstepd`s (children of init,
  not of slurmd) and their processes; slurmstepd ignores SIGTERM. `stop()` cancels the jobs
  first, then KILLs the leftover slurmstepds and TERMs the jobs' processes by PID: they are
  the processes whose environment holds this cluster's `SLURM_CONF`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

REQUIRED_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")

#: States in which a job or array task is finished for good (everything else may still run).
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)

_FIELD = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")


class SlurmError(RuntimeError):
    """The local cluster failed to start, a client command failed, or a wait timed out."""


class SlurmNotInstalledError(SlurmError):
    """Slurm or munge is not installed on this machine."""


@dataclass(frozen=True)
class JobRecord:
    """The state of one job, or of one array task, as Slurm reports it.

    `job_id` is the job's own id (for an array task, the task's id, not the array's);
    `array_job_id` / `array_task_id` are None for a job that is not part of an array.
    `exit_code` is Slurm's `code:signal` string ("0:0", "1:0", "0:15"). `restarts` is the
    requeue count (`Restarts=` of scontrol; None when read from the completion log, which does
    not record it). `source` is "scontrol" or "jobcomp".
    """

    job_id: int
    array_job_id: int | None
    array_task_id: int | None
    state: str
    exit_code: str
    reason: str
    restarts: int | None
    source: str

    @property
    def label(self) -> str:
        """Slurm's name for it: "12" for a job, "11_3" for task 3 of array 11."""
        if self.array_job_id is not None and self.array_task_id is not None:
            return f"{self.array_job_id}_{self.array_task_id}"
        return str(self.job_id)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


def parse_key_values(line: str) -> dict[str, str]:
    """`Key=value Key2=value two ...` (scontrol -o and jobcomp/filetxt lines) as a dict.

    A value runs up to the next ` Key=`, so values with spaces (job names, paths) survive as
    long as they do not themselves contain ` Word=`.
    """
    fields: dict[str, str] = {}
    matches = list(_FIELD.finditer(line))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        fields[match.group(1)] = line[match.end() : end].strip()
    return fields


def _optional_int(text: str | None) -> int | None:
    if text is None or not text.isdigit():
        return None
    return int(text)


def _record(fields: Mapping[str, str], source: str) -> JobRecord:
    state = (fields.get("JobState") or "UNKNOWN").split()[0]
    return JobRecord(
        job_id=int(fields["JobId"]),
        array_job_id=_optional_int(fields.get("ArrayJobId")),
        array_task_id=_optional_int(fields.get("ArrayTaskId")),
        state=state,
        exit_code=fields.get("ExitCode", ""),
        reason=fields.get("Reason", ""),
        restarts=_optional_int(fields.get("Restarts")),
        source=source,
    )


def _free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that nothing listens on now (the kernel's picks for port 0,
    all bound at once so that they differ)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _with_parent_death_signal(command: list[str]) -> list[str]:
    """`command` under util-linux `setpriv --pdeathsig TERM` (when available): the daemon gets
    SIGTERM if the Python process that started it dies, so a killed test run does not leave
    daemons behind. (Not prctl in a `preexec_fn`: unsafe once the process has threads.)"""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return command
    return [setpriv, "--pdeathsig", "TERM", "--", *command]


def _alive(pid: int) -> bool:
    """`kill -0 pid`, a zombie counting as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start_time(pid: int) -> str | None:
    """The process' start time in clock ticks (/proc/PID/stat field 22): with the pid it
    identifies a process even after its pid could have been reused."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _descendants(roots: Iterable[int]) -> dict[int, str | None]:
    """Every live descendant of the `roots` processes: pid -> start time."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, str | None] = {}
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = _start_time(child)
                todo.append(child)
    return found


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _processes_with_environ(entry: str) -> set[int]:
    """Live processes whose environment (as exec'ed) holds `entry` ("NAME=value"), except
    this process and its ancestors."""
    spared = {0}
    pid = os.getpid()
    while pid not in spared:
        spared.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    wanted = entry.encode()
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in spared:
            continue
        try:
            if wanted in (proc / "environ").read_bytes().split(b"\0"):
                found.add(int(proc.name))
        except OSError:
            continue
    return found


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


class LocalSlurm:
    """A private single-node Slurm cluster (munged + slurmctld + slurmd) in `state_dir`.

    Use it as a context manager (or call `start()` / `stop()`): leaving the block cancels
    the remaining jobs and stops every daemon, also when start-up failed half-way.
    `cpus` / `memory_mb` are what the one node `localhost` offers (`SlurmdParameters=
    config_overrides`: they may exceed the machine's). `partition` is the default partition.
    `start_timeout`: seconds for the node to become idle. `extra_conf`: more slurm.conf lines,
    appended (e.g. "MinJobAge=30").
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        cpus: int = 2,
        memory_mb: int = 4000,
        partition: str = "debug",
        start_timeout: float = 30.0,
        extra_conf: Sequence[str] = (),
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.partition = partition
        self.start_timeout = start_timeout
        self.extra_conf = list(extra_conf)
        self.conf_path = self.state_dir / "slurm.conf"
        self.jobcomp_path = self.state_dir / "jobcomp.txt"
        self.log_dir = self.state_dir / "log"
        self.env: dict[str, str] = {}
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None
        self._munge_dir: Path | None = None
        self._munge_pid_file = self.state_dir / "munge" / "munged.pid"
        self._daemons: dict[str, subprocess.Popen[bytes]] = {}
        self._munged: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ start / stop

    def __enter__(self) -> LocalSlurm:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def munge_socket(self) -> Path:
        if self._munge_dir is None:
            raise SlurmError("munged is not started")
        return self._munge_dir / "munge.sock"

    def start(self) -> None:
        """Start munged, write slurm.conf, start slurmctld and slurmd, and return once the node
        is idle. Raises SlurmNotInstalledError or SlurmError (with the daemons' log tails); on
        failure the caller must still call `stop()` (the context manager does)."""
        missing = [p for p in REQUIRED_PROGRAMS if shutil.which(p) is None]
        if missing:
            raise SlurmNotInstalledError(
                f"Slurm/munge not installed ({', '.join(missing)} not on PATH): run "
                "`make system-deps` (as root: apt-get install slurm-wlm munge)"
            )
        begin = time.monotonic()
        for sub in ("munge", "ctld", "slurmd", "log", "run"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        # Job ids start at 1 again (slurmctld -i): no completion records of an earlier run.
        self.jobcomp_path.unlink(missing_ok=True)
        self._start_munged()
        self._write_conf()
        self.env = self._client_env()
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf_path)])
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(self.conf_path)])
        self._wait_idle()
        self.start_seconds = time.monotonic() - begin

    def _start_munged(self) -> None:
        munge = self.state_dir / "munge"
        key = munge / "munge.key"
        if not key.exists():
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(1024))
        # munged checks that every parent of its socket is o+x: not pytest's 0700 tmp dirs.
        self._munge_dir = Path(tempfile.mkdtemp(prefix="vbsad-munge-"))
        self._munge_dir.chmod(0o755)
        command = [
            "munged",
            "--foreground",  # our child: it gets SIGTERM if this process dies
            f"--key-file={key}",
            f"--socket={self.munge_socket}",
            f"--pid-file={self._munge_pid_file}",
            f"--seed-file={munge / 'munged.seed'}",
        ]
        self._munged = self._popen("munged", command, os.environ)  # logs to stderr
        deadline = time.monotonic() + 10
        while not self.munge_socket.exists():
            if self._munged.poll() is not None or time.monotonic() > deadline:
                why = (
                    f"exit {self._munged.returncode}"
                    if self._munged.returncode is not None
                    else "no socket after 10 s"
                )
                raise SlurmError(
                    f"munged failed to start ({why})\n"
                    f"munged.log:\n{_tail(self.log_dir / 'munged.log')}"
                )
            time.sleep(0.02)

    def _write_conf(self) -> None:
        d = self.state_dir
        ctld_port, slurmd_port = _free_ports(2)
        lines = [
            "# A private single-node cluster written by tests/local_slurm.py",
            "ClusterName=vbsad-local",
            "SlurmctldHost=localhost",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket},cred_expire=5",
            "MpiDefault=none",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={self.jobcomp_path}",
            "MailProg=/bin/true",
            "JobRequeue=1",
            "KillWait=5",
            "SchedulerParameters=sched_interval=2",
            "ReturnToService=2",
            "SlurmdParameters=config_overrides",
            f"StateSaveLocation={d / 'ctld'}",
            f"SlurmdSpoolDir={d / 'slurmd'}",
            f"SlurmctldPidFile={d / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={d / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.log_dir / 'slurmctld.log'}",
            f"SlurmdLogFile={self.log_dir / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.memory_mb} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
            *self.extra_conf,
        ]
        self.conf_path.write_text("\n".join(lines) + "\n")

    def _client_env(self) -> dict[str, str]:
        """os.environ without the Slurm variables of an enclosing job, plus SLURM_CONF, with
        the test interpreter's bin/ (the venv: python, vbsad, mpiexec) first on PATH."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SINFO_"))
        }
        env["SLURM_CONF"] = str(self.conf_path)
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
        return env

    def _spawn(self, name: str, command: list[str]) -> None:
        self._daemons[name] = self._popen(name, command, self.env)

    def _popen(
        self, name: str, command: list[str], env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        """Start a daemon in the foreground, its output appended to log/NAME.stdout (munged:
        log/munged.log; slurmctld and slurmd write their real logs to log/NAME.log)."""
        log = "munged.log" if name == "munged" else f"{name}.stdout"
        with (self.log_dir / log).open("ab") as out:
            return subprocess.Popen(
                _with_parent_death_signal(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,  # a Ctrl-C in the terminal is for the test run only
            )

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while True:
            dead = [name for name, p in self._daemons.items() if p.poll() is not None]
            if dead:
                raise SlurmError(f"{' and '.join(dead)} died during start-up\n{self.log_tails()}")
            try:
                result = subprocess.run(
                    ["sinfo", "-h", "-o", "%T"],
                    env=self.env,
                    capture_output=True,
                    text=True,
                    timeout=2,
                    check=False,
                )
                last = (result.stdout + result.stderr).strip()
                if result.returncode == 0 and result.stdout.split() == ["idle"]:
                    return
            except subprocess.TimeoutExpired:
                last = "sinfo timed out"
            if time.monotonic() > deadline:
                raise SlurmError(
                    f"the node is not idle after {self.start_timeout:.0f} s (sinfo: {last!r})\n"
                    f"{self.log_tails()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Cancel the remaining jobs, `scontrol shutdown`, TERM (then KILL) the daemons that
        are left and every process of the cluster's jobs by PID, stop munged by its pid file,
        remove the socket dir. Safe to call more than once and after a failed start."""
        begin = time.monotonic()
        alive = {name: p.pid for name, p in self._daemons.items() if p.poll() is None}
        if self.env and {"slurmctld", "slurmd"} <= alive.keys():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                ids = self.run("squeue", "-h", "-o", "%A", timeout=5, check=False).stdout.split()
                if ids:
                    self.run("scancel", *ids, timeout=5, check=False)
                    self._wait_queue_empty(timeout=2 * 5 + 5)  # KillWait=5
        descendants = _descendants(alive.values())  # e.g. slurmctld's slurmscriptd
        grace = 0.0
        if self.env and "slurmctld" in alive:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.run("scontrol", "shutdown", timeout=10, check=False)
                grace = 10.0
        deadline = time.monotonic() + grace
        for process in self._daemons.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._daemons.clear()
        # `scontrol shutdown` leaves the jobs' slurmstepd (children of init, not of slurmd)
        # and the jobs' processes running: they all carry our SLURM_CONF in their environment.
        leftovers = {p for p, started in descendants.items() if _start_time(p) == started}
        leftovers |= _processes_with_environ(f"SLURM_CONF={self.conf_path}")
        # slurmstepd ignores SIGTERM: KILL it, then TERM (KILL after a grace time) the rest.
        stepds = {p for p in leftovers if _command_line(p).startswith("slurmstepd")}
        self._terminate_by_pid(sorted(stepds), first_signal=signal.SIGKILL)
        self._terminate_by_pid(sorted(leftovers - stepds))
        self._stop_munged()
        if self._munge_dir is not None:
            shutil.rmtree(self._munge_dir, ignore_errors=True)
            self._munge_dir = None
        self.stop_seconds = time.monotonic() - begin

    def _wait_queue_empty(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self._daemons.values()):
                return  # a daemon died: the jobs cannot be cancelled (stop() kills them)
            result = self.run("squeue", "-h", "-o", "%A", timeout=5, check=False)
            if result.returncode != 0 or not result.stdout.strip():
                return
            time.sleep(0.3)

    @staticmethod
    def _terminate_by_pid(
        pids: Sequence[int], grace: float = 3.0, first_signal: int = signal.SIGTERM
    ) -> None:
        """Send `first_signal`, give them `grace` seconds to exit, then SIGKILL."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, first_signal)
        deadline = time.monotonic() + grace
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def _stop_munged(self) -> None:
        """TERM munged by its pid file (it is our child: also reap it)."""
        munged, self._munged = self._munged, None
        pid: int | None = None
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(self._munge_pid_file.read_text().split()[0])
        if pid is not None and munged is not None and pid != munged.pid:
            pid = None  # a stale pid file (not our munged): leave that process alone
        if pid is None and munged is not None and munged.poll() is None:
            pid = munged.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if munged is not None:
            try:
                munged.wait(timeout=5)
            except subprocess.TimeoutExpired:
                munged.kill()
                munged.wait()
        with contextlib.suppress(OSError):
            self._munge_pid_file.unlink()

    def log_tails(self, lines: int = 25) -> str:
        """The last lines of every daemon's log (for error messages)."""
        names = ["slurmctld.log", "slurmctld.stdout", "slurmd.log", "slurmd.stdout", "munged.log"]
        return "\n".join(
            f"--- {name} ---\n{_tail(self.log_dir / name, lines)}"
            for name in names
            if (self.log_dir / name).exists()
        )

    # ------------------------------------------------------------------ clients

    def run(
        self,
        *command: str | os.PathLike[str],
        timeout: float = 60.0,
        check: bool = True,
        cwd: Path | str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (a Slurm client or anything else) with `env`, output captured as
        text. With `check`, a non-zero exit raises SlurmError showing stdout and stderr."""
        if not self.env:
            raise SlurmError("the cluster is not started")
        args = [os.fspath(c) for c in command]
        result = subprocess.run(
            args,
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise SlurmError(
                f"{' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout.strip()}\nstderr: {result.stderr.strip()}"
            )
        return result

    def sbatch(
        self,
        script: Path | str,
        *options: str,
        script_args: Sequence[str] = (),
        cwd: Path | str | None = None,
    ) -> int:
        """Submit `script` with sbatch `options` (placed before the script; `script_args` go
        after it) from `cwd`; return the job id (of the array, for an array job)."""
        result = self.run(
            "sbatch", "--parsable", *options, os.fspath(script), *script_args, cwd=cwd
        )
        return int(result.stdout.strip().split(";")[0])

    def jobcomp_records(self) -> list[JobRecord]:
        """Every line of the job-completion log, oldest first (a requeued job has several)."""
        try:
            text = self.jobcomp_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [
            _record(parse_key_values(line), "jobcomp")
            for line in text.splitlines()
            if line.startswith("JobId=")
        ]

    def scontrol_records(self, job_id: int | str) -> list[JobRecord] | None:
        """The controller's records of a job (one per started array task, plus one for the
        still-pending tasks of an array); None once the controller purged it (MinJobAge)."""
        result = self.run("scontrol", "show", "job", "-o", str(job_id), timeout=10, check=False)
        if result.returncode != 0:
            if "Invalid job id" in result.stderr:
                return None
            raise SlurmError(f"scontrol show job {job_id}: {result.stderr.strip()}")
        return [
            _record(parse_key_values(line), "scontrol")
            for line in result.stdout.splitlines()
            if line.startswith("JobId=")
        ]

    def job_states(self, job_id: int | str) -> list[JobRecord]:
        """The latest record of every task of a job (one for a job that is not an array),
        sorted by array task id: the completion log, overridden by the controller's records
        while it has them. An array's still-pending tasks are one record whose
        `array_task_id` is None (their ids are a range). [] for an unknown job."""
        array_id = int(str(job_id).split("_")[0])
        task = _optional_int(str(job_id).split("_")[1]) if "_" in str(job_id) else None

        def ours(r: JobRecord) -> bool:
            if task is not None:
                return r.array_job_id == array_id and r.array_task_id == task
            return array_id in (r.job_id, r.array_job_id)

        merged: dict[tuple[int, int | None], JobRecord] = {}
        for record in self.jobcomp_records():
            if ours(record):
                merged[(record.job_id, record.array_task_id)] = record
        for record in self.scontrol_records(job_id) or []:
            if ours(record):
                merged[(record.job_id, record.array_task_id)] = record
        return sorted(
            merged.values(),
            key=lambda r: (r.array_task_id is None, r.array_task_id or 0, r.job_id),
        )

    def job_state(self, job_id: int | str) -> str | None:
        """The state of one job or array task ("11_3"), e.g. "PENDING", "RUNNING",
        "COMPLETED"; None if Slurm does not know it. For a whole array use `job_states`."""
        records = self.job_states(job_id)
        if not records:
            return None
        if len(records) > 1:
            raise ValueError(f"job {job_id} is an array of {len(records)} records: job_states()")
        return records[0].state

    def wait(self, job_id: int | str, timeout: float = 120.0, poll: float = 0.5) -> list[JobRecord]:
        """Wait until the job (every task of an array) left the queue for good and return
        the final record of each task, sorted by array task id. A requeued job is waited for
        until its last run ended. Raises SlurmError after `timeout` seconds (with squeue's
        view and the daemons' log tails), for a job Slurm does not know, and for a job that
        stays PENDING with `DependencyNeverSatisfied` (submitted without
        `--kill-on-invalid-dep=yes`: it would never leave the queue)."""
        deadline = time.monotonic() + timeout
        never_since: float | None = None
        while True:
            queued = self.run("squeue", "-h", "-j", str(job_id), "-o", "%i %T %r", check=False)
            gone = queued.returncode != 0 and "Invalid job id" in queued.stderr
            if gone or (queued.returncode == 0 and not queued.stdout.strip()):
                records = self.job_states(job_id)
                # jobcomp and the controller agree once the queue is empty; a record caught
                # mid-requeue (PENDING) means: not done yet.
                if records and all(r.finished for r in records):
                    return records
                if gone and not records:
                    raise SlurmError(f"Slurm does not know job {job_id}")
            if "PENDING DependencyNeverSatisfied" in queued.stdout:
                never_since = never_since or time.monotonic()
                if time.monotonic() - never_since > 5:
                    raise SlurmError(
                        f"job {job_id} can never start (its dependency failed) and stays "
                        "PENDING: submit it with --kill-on-invalid-dep=yes\n"
                        f"squeue: {queued.stdout.strip()}"
                    )
            else:
                never_since = None
            if time.monotonic() > deadline:
                raise SlurmError(
                    f"job {job_id} still not finished after {timeout:.0f} s; squeue: "
                    f"{queued.stdout.strip() or queued.stderr.strip()!r}; records: "
                    f"{self.job_states(job_id)}\n{self.log_tails(10)}"
                )
            time.sleep(poll)

    def wait_for_state(
        self, job_id: int | str, states: Iterable[str], timeout: float = 60.0
    ) -> str:
        """Wait until a job (or array task "11_3") is in one of `states` (e.g. {"RUNNING"});
        return that state. Raises SlurmError on timeout or if it finished otherwise."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            state = self.job_state(job_id)
            if state in wanted:
                return state
            if state in FINAL_STATES:
                raise SlurmError(f"job {job_id} ended {state} while waiting for {sorted(wanted)}")
            if time.monotonic() > deadline:
                raise SlurmError(f"job {job_id} is {state}, not {sorted(wanted)}, after {timeout}")
            time.sleep(0.2)
