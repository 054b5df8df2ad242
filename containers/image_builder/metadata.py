"""The image's metadata under `/.singularity.d`, written as Apptainer writes it after `%post`.

* `%help` -> `runscript.help`;
* `%labels` -> `labels.json` (tab-indented, keys sorted), after the labels `%post` appended to
  `$APPTAINER_LABELS` and Apptainer's build labels (schema version, creation time, build date,
  the header as `org.label-schema.usage.singularity.deffile.*`, architecture); a `%labels`
  key that is already set keeps its value, with a warning, as Apptainer does without
  `--force`;
* the definition (build arguments substituted) -> `Singularity`;
* `%environment` -> appended to `env/90-environment.sh` (`%post` appends to `91-...`);
* `%runscript`, `%test` -> `runscript`, `test`: `#!/bin/sh` (or the script's own `#!` line),
  a blank line, the script.

Plus, for Charliecloud's `ch-run --set-env`, `/ch/environment`: the variables the environment
files set, evaluated at build time (`NAME=value` lines).
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from .definition import Definition, Script, Stage

Log = Callable[[str], None]
SINGULARITY_D = ".singularity.d"
BUILD_LABELS = ".build.labels"


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _shebang_script(script: Script) -> str:
    """Apptainer's handleShebangScript: the script's own `#!` line or `#!/bin/sh`."""
    text = script.text
    shebang = "#!/bin/sh"
    if text.strip().startswith("#!"):
        first, _, rest = text.lstrip().partition("\n")
        shebang, text = first.strip(), rest
    return f"{shebang}\n\n{text}\n"


def _read_build_labels(rootfs: Path) -> dict[str, str]:
    """Labels `%post` appended to `$APPTAINER_LABELS` (`KEY VALUE` lines); the file is
    removed from the image."""
    path = rootfs / BUILD_LABELS
    if not path.exists():
        return {}
    labels = {}
    for line in path.read_text().splitlines():
        key, _, value = line.strip().partition(" ")
        if key and not key.startswith("#"):
            labels[key] = value.strip()
    path.unlink()
    return labels


def build_time() -> datetime.datetime:
    """Now, or `SOURCE_DATE_EPOCH` for a reproducible timestamp (as Apptainer)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.datetime.fromtimestamp(int(epoch), tz=datetime.UTC)
    return datetime.datetime.now(tz=datetime.UTC)


def labels_for(
    stage: Stage, post_labels: Mapping[str, str], architecture: str, log: Log
) -> dict[str, str]:
    """The content of `labels.json` (see the module docstring)."""
    labels = dict(post_labels)
    now = build_time()
    labels["org.label-schema.schema-version"] = "1.0"
    labels["org.opencontainers.image.created"] = now.isoformat(timespec="seconds").replace(
        "+00:00", "Z"
    )
    labels["org.label-schema.build-date"] = now.strftime("%A_%-d_%B_%Y_%-H:%-M:%-S_UTC")
    if stage.help is not None and stage.help.text:
        labels["org.label-schema.usage"] = f"/{SINGULARITY_D}/runscript.help"
        labels["org.label-schema.usage.apptainer.runscript.help"] = (
            f"/{SINGULARITY_D}/runscript.help"
        )
    for key, value in stage.header.items():
        labels[f"org.label-schema.usage.singularity.deffile.{key}"] = value
    labels["org.opencontainers.image.architecture"] = architecture
    labels["org.label-schema.build-arch"] = architecture
    for key, value in stage.labels.items():
        if key in labels:
            log(f"warning: label {key} already exists, not overwriting it (as Apptainer)")
            continue
        labels[key] = value
    return labels


def insert_metadata(
    definition: Definition, stage: Stage, rootfs: Path, architecture: str, log: Log
) -> dict[str, str]:
    """Write the stage's metadata into `rootfs` (see the module docstring); return the
    labels."""
    meta = rootfs / SINGULARITY_D
    if stage.help is not None and stage.help.text:
        _write(meta / "runscript.help", stage.help.text + "\n", 0o644)
    labels = labels_for(stage, _read_build_labels(rootfs), architecture, log)
    _write(meta / "labels.json", json.dumps(labels, indent="\t", sort_keys=True), 0o644)
    _write(meta / "Singularity", definition.text, 0o644)
    if stage.environment is not None and stage.environment.text:
        with open(meta / "env" / "90-environment.sh", "a", encoding="utf-8") as env:
            env.write("\n" + stage.environment.text + "\n")
    if stage.runscript is not None and stage.runscript.text:
        _write(meta / "runscript", _shebang_script(stage.runscript), 0o755)
    if stage.test is not None and stage.test.text:
        _write(meta / "test", _shebang_script(stage.test), 0o755)
    return labels


def write_charliecloud_environment(rootfs: Path, variables: Mapping[str, str]) -> None:
    """`/ch/environment`: what `ch-run --set-env IMAGE` sets (`NAME=value` lines)."""
    text = "".join(f"{name}={value}\n" for name, value in sorted(variables.items()))
    _write(rootfs / "ch" / "environment", text, 0o644)
