"""The demo stage of `vbsad run` without a config: the embedded demo's samples and config.

`prepare_demo(directory, settings)` writes ``data/*.lhe.gz`` (`vbsad_batch.demo.lhe_writer`)
and ``demo.toml`` (`vbsad_batch.demo.demo_config`) into ``directory``, unless they are already
there for the same settings. A toy for demonstration and testing, not physics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from vbsad_batch.demo.demo_config import DemoSettings, demo_config_toml
from vbsad_batch.demo.lhe_writer import generate_demo
from vbsad_batch.demo.toy_events import DEFAULT_OPERATORS
from vbsad_batch.runtime.atomic_write import write_text_atomic
from vbsad_batch.runtime.progress import ProgressCallback, ProgressEvent
from vbsad_batch.runtime.provenance import tool_version
from vbsad_batch.runtime.stage import StageOutputs, StageResult, StageUnit, command

__all__ = ["DEMO_CONFIG_NAME", "DEMO_DATA_DIR", "demo_unit", "prepare_demo"]

DEMO_CONFIG_NAME = "demo.toml"
DEMO_DATA_DIR = "data"
_DEMO_KIND = "vbsad_batch.demo"
_STAGE = "demo"


def demo_unit(directory: Path) -> StageUnit:
    """The demo samples in ``directory/data`` as a unit of the stage contract."""
    return StageUnit(
        stage=_STAGE,
        name="demo",
        kind=_DEMO_KIND,
        directory=Path(directory) / DEMO_DATA_DIR,
        remake=f"{command('run', '--output', directory)} --force",
    )


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
    it is already there for the same settings; return the config path and what was done.

    The samples go through the stage contract; ``demo.toml`` is cheap and rewritten whenever
    this version of the tool writes another text, without regenerating the samples."""
    directory = Path(directory)
    config_path = directory / DEMO_CONFIG_NAME
    unit = demo_unit(directory)
    key = {
        "tool_version": tool_version(),
        "settings": asdict(settings),
        "seed": seed,
        "operators": list(operators),
    }
    n_files = 1 + 2 * len(operators)

    def write(out: StageOutputs, reason: str) -> None:
        out.emit(ProgressEvent(_STAGE, "run_started", total_items=n_files, message=reason))

        def file_written(path: Path, events: int, seconds: float) -> None:
            out.add(path.name)
            out.emit(
                ProgressEvent(
                    _STAGE,
                    "item_finished",
                    item=str(path),
                    total_items=n_files,
                    events=events,
                    seconds=seconds,
                )
            )

        generate_demo(
            unit.directory,
            n_events=settings.n_events,
            eft_events=settings.eft_events,
            seed=seed,
            operators=operators,
            progress=file_written,
        )
        out.summary = f"{n_files} LHE files in {unit.directory}"

    ran = unit.run(key, write, force=force, progress=progress)
    rewritten = _write_if_changed(
        config_path, demo_config_toml(DEMO_DATA_DIR, settings, operators=operators)
    )
    summary = ran.summary or f"{directory} up to date"
    if ran.status == "skipped" and rewritten:
        summary += f"; {config_path.name} rewritten"
    return config_path, StageResult(**ran.fields(summary))


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds it; True if written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    write_text_atomic(path, text)
    return True
