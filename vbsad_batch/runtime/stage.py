"""The stage contract: the one lifecycle every stage of an analysis goes through.

A *unit* of a stage is a set of output files in one directory, described by a JSON manifest
that is written last, so that its presence marks the outputs complete: the datasets of a
config, one model directory, the scores of one model, the scan, the report, the demo samples,
one Parquet shard of an LHE file. For a unit, every stage does the same, here and nowhere else:

1. the **key**: what the outputs depend on, as JSON data: the inputs by content (SHA-256),
   every setting that changes a byte of the outputs, the format and tool versions;
2. **up to date?** (`StageUnit.check`): the manifest exists, is of the unit's kind, was made
   for an equal key, and every output it lists still has its recorded SHA-256;
3. if not (or forced): **lock the unit** (one writer at a time, see below) and check again
   under the lock (another writer may have finished it meanwhile), then **drop the manifest**
   (a run that fails from here on leaves no claim of completeness) and the **temporary
   files** of killed writers;
4. **write the outputs atomically** (`StageOutputs`: a temporary file, then a rename), each
   recorded with its size, mtime and SHA-256;
5. **write the manifest last**: kind, key, outputs, inputs, provenance, timings; unlock;
6. return **one typed result**: a `StageResult` (status "written", "skipped" or "resumed",
   the outputs, the seconds), subclassed by each stage with its own fields. Progress goes to
   the stage's `ProgressCallback`.

One writer per unit: the whole write (the check under the lock, the outputs, the manifest)
holds an exclusive lock (`StageUnit.lock`, `vbsad_batch.runtime.output_lock`) on a hidden file
beside what the unit owns, named after it (`StageUnit.lock_path`): for a unit that owns its
directory, ``.<directory name>.lock`` in the parent directory (``out/.datasets.lock``,
``out/models/.vae_latent3.lock``), so that the unit's directory holds only its outputs and
deleting it does not free the lock; for a unit that shares its directory with others
(`temp_scope`: the shards of one folder), ``.<manifest name>.lock`` beside its manifest
(``shards/.x.manifest.json.lock``). A second writer of the same unit stops at once with
`OutputBusyError` naming the holder (host, PID, command, since when), or waits for it with
``VBSAD_LOCK_WAIT`` set. Per unit, not per directory: the shards of one folder are written side
by side, e.g. by Slurm array tasks. Readers take no lock: a unit found up to date is used as it
is. A lock file is no output: no manifest lists it, no clean-up removes it, and one left behind
is harmless.

Inputs are verified against the manifests of the stages that made them
(`StageUnit.require_current`): the producing unit must be complete, made for the key the
current config gives it, and its files must still have their recorded SHA-256. A missing,
stale, mixed (files of two runs) or edited input raises `StaleInputError`, naming the file and
the command that remakes it. Since step 2 checks outputs by content too, running that command
does remake them.

Checking a file by content means reading it (SHA-256 at ~0.5 GB/s on this project's build
machine: 20 s per 10 GB, for every check of every stage). So a file whose size and mtime (ns)
equal its record is taken as unchanged without reading it; any other file is hashed and
compared. An edit that keeps size and mtime both (e.g. `touch -d` back to the old time) is the
one thing this cannot see; with the environment variable ``VBSAD_VERIFY=content`` every file is
hashed on every check.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from vbsad_batch.errors import MissingInputError, StaleInputError
from vbsad_batch.runtime.atomic_write import (
    atomic_path,
    remove_stale_temp_files,
    write_bytes_atomic,
)
from vbsad_batch.runtime.output_lock import hold
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.provenance import (
    MANIFEST_NAME,
    read_manifest,
    runtime_provenance,
    sha256_file,
    write_manifest,
)

__all__ = [
    "PROGRAM",
    "VERIFY_ENV",
    "FileRecord",
    "Freshness",
    "StageOutputs",
    "StageResult",
    "StageRun",
    "StageStatus",
    "StageUnit",
    "command",
    "fingerprint",
    "key_differences",
]

StageStatus = Literal["written", "skipped", "resumed"]

PROGRAM = "vbsad"
"""The command line program (`vbsad_batch.cli`)."""

VERIFY_ENV = "VBSAD_VERIFY"
"""Environment variable: "content" hashes every file on every check (no size + mtime path)."""

T = TypeVar("T")

_CHANGES_NAMED = 4


def command(subcommand: str, *arguments: object) -> str:
    """A `vbsad` command line, quoted for a POSIX shell: what a message tells a user to run,
    e.g. ``command("datasets", config.path)`` -> ``vbsad datasets ana.toml``."""
    return " ".join([PROGRAM, subcommand, *(shlex.quote(str(a)) for a in arguments)])


# --- files by content -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A file's identity: where it is, its size and mtime when recorded, its SHA-256.

    Attributes:
        path: relative to the unit's directory for outputs, absolute for inputs.
        size_bytes: size, bytes.
        mtime_ns: modification time, ns since the epoch (-1: not recorded).
        sha256: hex SHA-256 of the content.
    """

    path: str
    size_bytes: int
    mtime_ns: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict, keys = field names."""
        return {
            "path": self.path,
            "size_bytes": self.size_bytes,
            "mtime_ns": self.mtime_ns,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> FileRecord:
        """From a manifest entry; without `mtime_ns` the file is always hashed.

        Raises:
            KeyError, TypeError, ValueError: not a file record.
        """
        return cls(
            path=str(entry["path"]),
            size_bytes=int(entry["size_bytes"]),
            mtime_ns=int(entry.get("mtime_ns", -1)),
            sha256=str(entry["sha256"]),
        )


def fingerprint(
    path: Path, *, known: FileRecord | None = None, name: str | None = None
) -> FileRecord:
    """The record of the file at `path` now, under the name `name` (default: `path`).

    With `known`, an earlier record of the same file: when the size and mtime are unchanged,
    its SHA-256 is taken without reading the file (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        IsADirectoryError: `path` is a directory.
        RuntimeError: the file changed while it was being hashed.
    """
    before = path.stat()
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not a file")
    label = str(path) if name is None else name
    trust_stat = os.environ.get(VERIFY_ENV, "").strip().lower() != "content"
    if (
        trust_stat
        and known is not None
        and (known.size_bytes, known.mtime_ns) == (before.st_size, before.st_mtime_ns)
    ):
        return FileRecord(label, before.st_size, before.st_mtime_ns, known.sha256)
    digest = sha256_file(path)
    after = path.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise RuntimeError(f"{path}: file changed while it was being read")
    return FileRecord(label, after.st_size, after.st_mtime_ns, digest)


def _problem(directory: Path, record: FileRecord) -> str | None:
    """None when the file of `record` (relative to `directory`) still has its recorded content,
    else "missing" or "modified"."""
    path = directory / record.path
    if not path.is_file():
        return "missing"
    current = fingerprint(path, known=record)
    if current.size_bytes != record.size_bytes or current.sha256 != record.sha256:
        return "modified"
    return None


# --- keys -------------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def key_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted paths where two keys differ, e.g. ["config.luminosity_fb"]; [] if equal."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for name in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{name}" if prefix else str(name)
            if name not in old or name not in new:
                out.append(path)
            else:
                out.extend(key_differences(old[name], new[name], path))
        return out
    return [] if _canonical(old) == _canonical(new) else [prefix or "key"]


def _changed(old: Any, new: Mapping[str, Any], ignore: Sequence[str] = ()) -> str | None:
    """None when the keys are equal outside the top-level fields `ignore`, else "a, b changed"."""
    if not isinstance(old, Mapping):
        return "key changed"
    changes = key_differences(
        {k: v for k, v in old.items() if k not in ignore},
        {k: v for k, v in new.items() if k not in ignore},
    )
    if not changes:
        return None
    more = len(changes) - _CHANGES_NAMED
    return (
        ", ".join(changes[:_CHANGES_NAMED])
        + (f" (+{more} more)" if more > 0 else "")
        + (" changed")
    )


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StageResult:
    """What one unit of a stage did. Stages return subclasses that add their own fields.

    Attributes:
        stage: the stage: "preprocess", "demo", "datasets", "train", "score", "scan", "report".
        name: the unit, e.g. "datasets", "vae_latent3", a shard's file name.
        status: "written" (outputs made), "skipped" (already up to date) or "resumed"
            (continued from a checkpoint, then written).
        reason: why it was (re)written ("new", "forced", "x changed", ...) or "up to date".
        directory: the unit's directory.
        manifest: its manifest file.
        outputs: the output files, written or already there, in the manifest's order.
        seconds: wall time of this call, s.
        summary: one line for a log, e.g. "7 dataset(s)".
    """

    stage: str
    name: str
    status: StageStatus
    reason: str
    directory: Path
    manifest: Path
    outputs: tuple[Path, ...]
    seconds: float
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Freshness:
    """The answer of `StageUnit.check`.

    Attributes:
        up_to_date: the outputs are complete and current for the key.
        reason: "up to date", or why not ("new", "x changed", "y.parquet modified", ...).
        manifest: the manifest found, if of the unit's kind (None otherwise).
    """

    up_to_date: bool
    reason: str
    manifest: dict[str, Any] | None


@dataclass(frozen=True)
class StageRun(Generic[T]):
    """What `StageUnit.run` did.

    Attributes:
        unit: the unit.
        status: "written", "skipped" or "resumed".
        reason: why (see `StageResult.reason`).
        manifest: the unit's manifest (the new one, or the one found up to date).
        outputs: the output files, in the manifest's order.
        started: `time.monotonic()` when the run started.
        value: what the writer returned; None when skipped.
        summary: the writer's one-line summary ("" when skipped).
    """

    unit: StageUnit
    status: StageStatus
    reason: str
    manifest: dict[str, Any]
    outputs: tuple[Path, ...]
    started: float
    value: T | None
    summary: str = ""

    def fields(self, summary: str | None = None) -> dict[str, Any]:
        """The `StageResult` fields, to build a stage's result subclass."""
        return {
            "stage": self.unit.stage,
            "name": self.unit.name,
            "status": self.status,
            "reason": self.reason,
            "directory": self.unit.directory,
            "manifest": self.unit.manifest_path,
            "outputs": self.outputs,
            "seconds": time.monotonic() - self.started,
            "summary": self.summary if summary is None else summary,
        }


# --- writing ----------------------------------------------------------------------------------


class StageOutputs:
    """The outputs of one run of a unit, handed to the code that writes them.

    Every output goes through `path`, `write_text` or `write_bytes`, which write it atomically
    and record it; a file that a library writes atomically under its own name is recorded with
    `add`. `manifest` takes the stage's own manifest fields, `record_input` the files read.
    The writer may set `status` ("resumed"), `reason` and `summary`, and report progress with
    `emit`.
    """

    def __init__(self, unit: StageUnit, progress: ProgressCallback | None) -> None:
        self.unit = unit
        self.manifest: dict[str, Any] = {}
        self.status: StageStatus = "written"
        self.reason: str | None = None
        self.summary = ""
        self._progress = progress
        self._records: dict[str, tuple[FileRecord, dict[str, Any]]] = {}
        self._inputs: dict[str, FileRecord] = {}

    @property
    def directory(self) -> Path:
        """The unit's directory."""
        return self.unit.directory

    def emit(self, event: ProgressEvent) -> None:
        """Report progress to the caller's callback, if any."""
        if self._progress is not None:
            self._progress(event)

    @contextlib.contextmanager
    def path(self, output: str, **extra: Any) -> Iterator[Path]:
        """A temporary path to write `output` (a path relative to the unit's directory) through;
        renamed into place and recorded, with `extra` fields in its manifest entry, when the
        block ends without an error."""
        dest = self.unit.directory / output
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            yield tmp
        self.add(output, **extra)

    def write_bytes(self, output: str, data: bytes, **extra: Any) -> Path:
        """Write `output` with `data`, atomically, and record it."""
        dest = self.unit.directory / output
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(dest, data)
        return self.add(output, **extra)

    def write_text(self, output: str, text: str, **extra: Any) -> Path:
        """Write `output` with `text` (UTF-8), atomically, and record it."""
        return self.write_bytes(output, text.encode("utf-8"), **extra)

    def add(self, output: str, **extra: Any) -> Path:
        """Record `output`, already in place (written atomically by the caller)."""
        key = Path(output).as_posix()
        dest = self.unit.directory / key
        self._records[key] = (fingerprint(dest, name=key), extra)
        return dest

    def describe(self, output: str, **extra: Any) -> None:
        """Add fields to the manifest entry of `output` (e.g. its number of rows)."""
        record, fields = self._records[Path(output).as_posix()]
        self._records[record.path] = (record, {**fields, **extra})

    def record_input(self, record: FileRecord) -> None:
        """List an input file (absolute path) in the manifest's `inputs`: later checks hash it
        again only when its size or mtime changed."""
        self._inputs[record.path] = record

    def entries(self, *, with_mtime: bool = True) -> list[dict[str, Any]]:
        """The manifest's `outputs` entries, in writing order (`with_mtime`: with the mtimes
        that let later checks skip reading unchanged files)."""
        entries = [{**extra, **record.to_dict()} for record, extra in self._records.values()]
        if not with_mtime:
            for entry in entries:
                del entry["mtime_ns"]
        return entries

    def names(self) -> list[str]:
        """The outputs' names (paths relative to the unit's directory), in writing order."""
        return list(self._records)

    def input_entries(self) -> list[dict[str, Any]]:
        """The manifest's `inputs` entries."""
        return [record.to_dict() for record in self._inputs.values()]


# --- the unit ---------------------------------------------------------------------------------

KeyComparison = Callable[[Mapping[str, Any], Mapping[str, Any]], "str | None"]
"""(old manifest, new key) -> None when equivalent, else what changed."""


@dataclass(frozen=True)
class StageUnit:
    """One unit of a stage: its outputs in `directory`, described by one manifest.

    Attributes:
        stage: the stage ("datasets", "train", ...).
        name: the unit's name.
        kind: the manifest's `kind`, e.g. "vbsad_batch.datasets".
        directory: where the outputs and the manifest are.
        remake: the command that makes the outputs again, for messages, e.g.
            "vbsad datasets ana.toml".
        manifest_name: the manifest's file name in `directory`.
        temp_scope: None: every temporary file in `directory` and `temp_dirs` belongs to this
            unit; names: only the temporary files of these destinations do (a directory shared
            with other writers, e.g. Slurm array tasks writing shards side by side).
        temp_dirs: subdirectories (relative) whose temporary files are cleaned too.
        compare: compares an old manifest with the current key (default: key equality).
    """

    stage: str
    name: str
    kind: str
    directory: Path
    remake: str
    manifest_name: str = MANIFEST_NAME
    temp_scope: tuple[str, ...] | None = None
    temp_dirs: tuple[str, ...] = ()
    compare: KeyComparison | None = field(default=None, compare=False)

    @property
    def manifest_path(self) -> Path:
        """The manifest file."""
        return self.directory / self.manifest_name

    @property
    def lock_path(self) -> Path:
        """The lock file that one writer at a time holds, beside what the unit owns (see the
        module docstring): ``<parent>/.<directory name>.lock`` for a unit that owns its
        directory, ``<directory>/.<manifest name>.lock`` for one that shares it."""
        if self.temp_scope is not None:
            return self.directory / f".{self.manifest_name}.lock"
        directory = self.directory if self.directory.name else self.directory.resolve()
        return directory.parent / f".{directory.name}.lock"

    @property
    def target(self) -> str:
        """The unit as messages name it: its directory, or for a unit in a directory shared
        with other units (`temp_scope`), its file there (e.g. ``shards/x.parquet``)."""
        return str(self.directory if self.temp_scope is None else self.directory / self.name)

    def lock(self, *, wait: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the unit's write lock (`lock_path`, created with its directory if missing) for
        the block.

        `writing` and `run` take it themselves; a stage that checks the unit before writing it
        through `writing` holds it around both, so that the check is made under the lock.
        Re-entrant in one thread.

        Args:
            wait: how long to wait for another writer, s (0: stop at once, inf: no limit);
                default: the environment variable ``VBSAD_LOCK_WAIT`` (unset: stop at once).

        Raises:
            OutputBusyError: another process writes the unit (still, after `wait`).
            LockFileError: the lock file is a symbolic link or not a regular file.
        """
        return hold(self.lock_path, target=self.target, wait=wait)

    def manifest(self) -> dict[str, Any] | None:
        """The manifest if it is there and of this unit's kind, else None."""
        content = read_manifest(self.manifest_path)
        return content if content is not None and content.get("kind") == self.kind else None

    def known_inputs(self, manifest: Mapping[str, Any] | None = None) -> dict[str, FileRecord]:
        """The input records of a manifest of this unit (default: the one on disk), by path."""
        manifest = self.manifest() if manifest is None else manifest
        records: dict[str, FileRecord] = {}
        for entry in (manifest or {}).get("inputs", []):
            with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
                record = FileRecord.from_dict(entry)
                records[record.path] = record
        return records

    def output_records(self, manifest: Mapping[str, Any]) -> list[FileRecord]:
        """The output records of a manifest of this unit.

        Raises:
            KeyError, TypeError, ValueError: a malformed manifest.
        """
        return [FileRecord.from_dict(entry) for entry in manifest["outputs"]]

    def _change(
        self, manifest: Mapping[str, Any], key: Mapping[str, Any], ignore: Sequence[str] = ()
    ) -> str | None:
        if self.compare is not None:
            return self.compare(manifest, key)
        return _changed(manifest["key"], key, ignore)

    # -- is it current? --------------------------------------------------------------------

    def check(self, key: Mapping[str, Any]) -> Freshness:
        """Whether the outputs are complete and current for `key`."""
        raw = read_manifest(self.manifest_path)
        if raw is None:
            return Freshness(False, "new", None)
        if raw.get("kind") != self.kind:
            return Freshness(False, "manifest of another kind", None)
        try:
            changed = self._change(raw, key)
            if changed is not None:
                return Freshness(False, changed, raw)
            for record in self.output_records(raw):
                problem = _problem(self.directory, record)
                if problem is not None:
                    return Freshness(False, f"{record.path} {problem}", raw)
        except (KeyError, TypeError, ValueError, AttributeError):
            return Freshness(False, "manifest incomplete", raw)
        return Freshness(True, "up to date", raw)

    def require_current(
        self, key: Mapping[str, Any] | None = None, *, ignore: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The manifest of this unit, checked for use as the input of another stage.

        The unit must be complete, made for `key` (when given; the top-level fields in
        `ignore`, e.g. options of the command line that made it, are not compared), and every
        output must still have its recorded SHA-256.

        Raises:
            StaleInputError: naming the file at fault and the command that remakes it.
        """
        raw = self.manifest()
        if raw is None:
            raise MissingInputError(
                f"{self.manifest_path}: no complete {self.stage} output {self.name} (manifest "
                f"missing: never made, or its run did not finish); run `{self.remake}`",
                path=self.manifest_path,
                remake=self.remake,
            )
        try:
            changed = None if key is None else self._change(raw, key, ignore)
            records = self.output_records(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StaleInputError(
                f"{self.manifest_path}: incomplete manifest ({exc}); run `{self.remake}`",
                path=self.manifest_path,
                remake=self.remake,
            ) from exc
        if changed is not None:
            raise StaleInputError(
                f"{self.directory}: the {self.stage} output {self.name} is stale for the "
                f"current config ({changed} since it was made); run `{self.remake}`",
                path=self.manifest_path,
                remake=self.remake,
            )
        for record in records:
            problem = _problem(self.directory, record)
            if problem is None:
                continue
            path = self.directory / record.path
            if problem == "missing":
                text = f"{path}: listed in {self.manifest_path} but missing"
            else:
                what = self.kind.rsplit(".", 1)[-1]
                text = (
                    f"{path}: SHA-256 differs from the {what} manifest {self.manifest_path} "
                    f"(modified since `{self.stage}` wrote it)"
                )
            raise StaleInputError(f"{text}; run `{self.remake}`", path=path, remake=self.remake)
        return raw

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(
        self,
        key: Mapping[str, Any],
        *,
        progress: ProgressCallback | None = None,
        previous: Mapping[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> Iterator[StageOutputs]:
        """Write the unit's outputs through the yielded `StageOutputs`, holding the unit's lock
        (`lock`) from before the manifest is dropped until after the new one is written.

        Before the block: the manifest is dropped and stale temporary files are removed. When
        the block ends without an error: outputs of the `previous` manifest that this run did
        not write are deleted, then the manifest is written, last. By default the manifest
        records `runtime_provenance()` (host, time), the seconds and the outputs' mtimes. With
        `provenance` given it is reproducible instead: exactly that provenance, and nothing
        that differs between equal runs (no host, time, duration or mtime; the outputs are then
        always checked by content).
        """
        start = time.monotonic()
        with self.lock():
            self.directory.mkdir(parents=True, exist_ok=True)
            self.manifest_path.unlink(missing_ok=True)
            for sub in ("", *self.temp_dirs):
                if self.temp_scope is None:
                    remove_stale_temp_files(self.directory / sub)
                else:
                    for name in (*self.temp_scope, self.manifest_name):
                        remove_stale_temp_files(self.directory / sub, name)
            out = StageOutputs(self, progress)
            yield out
            self._remove_dropped(previous, set(out.names()))
            manifest: dict[str, Any] = {
                **out.manifest,
                "kind": self.kind,
                "key": dict(key),
                "status": out.status,
                "outputs": out.entries(with_mtime=provenance is None),
            }
            if out.input_entries():
                manifest["inputs"] = out.input_entries()
            if provenance is None:
                manifest["provenance"] = runtime_provenance()
                manifest["seconds"] = round(time.monotonic() - start, 3)
            else:
                manifest["provenance"] = dict(provenance)
            write_manifest(self.manifest_path, manifest)

    def _remove_dropped(self, previous: Mapping[str, Any] | None, written: set[str]) -> None:
        """Delete the outputs an earlier run listed that this one did not write (e.g. the
        datasets of an operator no longer in the config); never anything outside the unit's
        directory."""
        if previous is None:
            return
        root = self.directory.resolve()
        for entry in previous.get("outputs", []):
            name = entry.get("path") if isinstance(entry, dict) else None
            if not isinstance(name, str) or Path(name).as_posix() in written:
                continue
            candidate = (self.directory / name).resolve()
            if root in candidate.parents and candidate != self.manifest_path.resolve():
                candidate.unlink(missing_ok=True)

    def run(
        self,
        key: Mapping[str, Any],
        write: Callable[[StageOutputs, str], T],
        *,
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> StageRun[T]:
        """The whole lifecycle: check, then, unless up to date and not `force`, lock, check
        again and write.

        Up to date, the unit is used without its lock (readers never wait). Otherwise the lock
        is held for the check and the write; a writer that waited for another one (see
        `lock`) finds the unit up to date, and skips it, when the other made it for the same
        key.

        `write(outputs, reason)` writes the outputs (see `StageOutputs`) and returns the
        stage's own data, kept in `StageRun.value`.

        Raises:
            OutputBusyError: another process writes the unit.
        """
        started = time.monotonic()
        fresh = self.check(key)
        if fresh.up_to_date and not force and fresh.manifest is not None:
            return self._skipped(fresh.manifest, started, progress)
        with self.lock():
            fresh = self.check(key)
            if fresh.up_to_date and not force and fresh.manifest is not None:
                return self._skipped(fresh.manifest, started, progress)
            reason = "forced" if force else fresh.reason
            with self.writing(key, progress=progress, previous=fresh.manifest) as out:
                value = write(out, reason)
            manifest = read_manifest(self.manifest_path) or {}
        if progress is not None:
            progress(ProgressEvent(self.stage, "run_finished", message=out.summary))
        outputs = tuple(self.directory / name for name in out.names())
        return StageRun(
            self, out.status, out.reason or reason, manifest, outputs, started, value, out.summary
        )

    def _skipped(
        self, manifest: dict[str, Any], started: float, progress: ProgressCallback | None
    ) -> StageRun[Any]:
        """The `StageRun` of a unit found up to date (`manifest`: its manifest)."""
        if progress is not None:
            progress(ProgressEvent(self.stage, "run_finished", message="up to date"))
        outputs = tuple(self.directory / r.path for r in self.output_records(manifest))
        return StageRun(self, "skipped", "up to date", manifest, outputs, started, None)
