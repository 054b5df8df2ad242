"""The demo stage of `vbsad run` without a config: the embedded demo's samples and config.

`prepare_demo(directory, settings)` writes ``data/*.lhe.gz`` (`vbsad_batch.demo.lhe_writer`)
and ``demo.toml`` (`vbsad_batch.demo.demo_config`) into ``directory``, unless they are already
there for the same settings. A toy for demonstration and testing, not physics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from vbsad_batch.demo.demo_config import DemoSettings, demo_config_toml
from vbsad_batch.demo.lhe_writer import generate_demo
from vbsad_batch.demo.toy_events import DEFAULT_OPERATORS
from vbsad_batch.pipeline import StageResult
from vbsad_batch.runtime.atomic_write import write_text_atomic
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.provenance import (
    MANIFEST_NAME,
    manifest_up_to_date,
    read_manifest,
    runtime_provenance,
    tool_version,
    write_manifest,
)

__all__ = ["DEMO_CONFIG_NAME", "DEMO_DATA_DIR", "prepare_demo"]

DEMO_CONFIG_NAME = "demo.toml"
DEMO_DATA_DIR = "data"
_DEMO_KIND = "vbsad_batch.demo"


def prepare_demo(
    directory: Path,
    settings: DemoSettings,
    *,
    seed: int = 1,
    operators: Sequence[str] = DEFAULT_OPERATORS,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[Path, StageResult]:
    """Write the embedded demo into ``directory`` (``data/*.lhe.gz`` and ``demo.toml``) unless
    it is already there for the same settings; return the config path and what was done."""
    start = time.monotonic()
    directory = Path(directory)
    data_dir = directory / DEMO_DATA_DIR
    config_path = directory / DEMO_CONFIG_NAME
    manifest_path = data_dir / MANIFEST_NAME
    key = {
        "tool_version": tool_version(),
        "settings": asdict(settings),
        "seed": seed,
        "operators": list(operators),
    }
    fresh, reason = manifest_up_to_date(
        read_manifest(manifest_path),
        kind=_DEMO_KIND,
        key=key,
        directory=directory,
        outputs_field="outputs",
    )
    if fresh and not force:
        # The data are current; the config is cheap: rewritten if this version writes another.
        if _write_if_changed(
            config_path, demo_config_toml(DEMO_DATA_DIR, settings, operators=operators)
        ):
            detail = f"{directory} up to date; {config_path.name} rewritten"
        else:
            detail = f"{directory} up to date"
        seconds = time.monotonic() - start
        return config_path, StageResult("demo", "skipped", detail, seconds)

    manifest_path.unlink(missing_ok=True)  # the manifest marks completion
    emit = progress or (lambda event: None)
    n_files = 1 + 2 * len(operators)
    emit(ProgressEvent("demo", "run_started", total_items=n_files, message=reason))

    last = [time.monotonic()]

    def file_written(path: Path, events: int) -> None:
        now = time.monotonic()
        emit(
            ProgressEvent(
                "demo",
                "item_finished",
                item=str(path),
                total_items=n_files,
                events=events,
                seconds=now - last[0],
            )
        )
        last[0] = now

    files = generate_demo(
        data_dir,
        n_events=settings.n_events,
        eft_events=settings.eft_events,
        seed=seed,
        operators=operators,
        progress=file_written,
    )
    _write_if_changed(config_path, demo_config_toml(DEMO_DATA_DIR, settings, operators=operators))
    outputs = [
        {"path": str(p.relative_to(directory)), "size_bytes": p.stat().st_size} for p in files
    ]
    write_manifest(
        manifest_path,
        {"kind": _DEMO_KIND, "key": key, "outputs": outputs, "provenance": runtime_provenance()},
    )
    emit(ProgressEvent("demo", "run_finished", total_items=n_files))
    seconds = time.monotonic() - start
    return config_path, StageResult(
        "demo", "done", f"{len(files)} LHE files in {data_dir}", seconds
    )


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds it; True if written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    write_text_atomic(path, text)
    return True
