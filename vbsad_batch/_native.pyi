"""Type stub of the Rust extension `vbsad_batch._native` (hand-written; keep in sync)."""

from typing import final

__version__: str
OBSERVABLE_NAMES: tuple[str, ...]

@final
class _ArrowSchema:
    def __arrow_c_schema__(self) -> object: ...

@final
class _ArrowArray:
    """A record batch exported through the Arrow PyCapsule interface."""

    def __arrow_c_schema__(self) -> object: ...
    def __arrow_c_array__(
        self, requested_schema: object | None = None
    ) -> tuple[object, object]: ...

@final
class LheStream:
    """One-shot stream of record batches; raises `vbsad_batch.errors.LheParseError`."""

    def __iter__(self) -> LheStream: ...
    def __next__(self) -> _ArrowArray: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...
    @property
    def schema(self) -> _ArrowSchema: ...
    def info_json(self) -> str:
        """Metadata JSON (keys = `LheInfo` fields) of what was read so far."""

def open_observables(path: str, batch_size: int, skip_bad_events: bool) -> LheStream: ...
def open_particles(path: str, batch_size: int, skip_bad_events: bool) -> LheStream: ...
def scan_info_json(path: str, skip_bad_events: bool) -> str: ...
def plan_split(
    path: str, parts: int, min_part_bytes: int
) -> list[tuple[int, int, int, int, bool]]: ...
def open_observables_range(
    path: str,
    batch_size: int,
    skip_bad_events: bool,
    start: int,
    end: int,
    lines_before: int,
    events_before: int,
    last: bool,
) -> LheStream: ...
