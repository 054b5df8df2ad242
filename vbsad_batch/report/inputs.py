"""What the report is made from: the manifests of the stages under a config's output directory.

`find_report_inputs(config)` reads the manifests that `vbsad datasets`, `vbsad train`,
`vbsad score` and `vbsad scan` write last (so that a manifest means a complete stage) and
returns a `ReportInputs`: one `StageOutput` per complete stage output, and a sentence with the
command to run for each expected output that is not there. `ReportInputs.verify` checks every
stage output through the stage contract: made for the config as it is now, every file with
its manifest's SHA-256, so that the report never shows data other than what the manifests
(and so its provenance table) describe, nor results of settings that have changed since.
`ReportInputs.samples()` gives each sample file's normalisation (cross section and where it
came from) and `ReportInputs.warnings()` every warning the stages recorded (cross-section
checks, splits, trainings that had not converged), so that what users read carries them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from vbsad_batch.config import AnalysisConfig, ModelSpec
from vbsad_batch.errors import StaleInputError
from vbsad_batch.ingest.normalisation import XSEC_SOURCE_TEXT
from vbsad_batch.models.model_unit import MODEL_MANIFEST_KIND, current_model, model_unit
from vbsad_batch.models.paths import MODELS_DIR_NAME
from vbsad_batch.models.scoring import (
    MANIFEST_KIND as SCORES_MANIFEST_KIND,
    SCORES_DIR_NAME,
    current_scores,
    scores_unit,
)
from vbsad_batch.runtime.provenance import MANIFEST_NAME, read_manifest, sha256_file
from vbsad_batch.scan.driver import MANIFEST_KIND as SCAN_MANIFEST_KIND, SCAN_DIR_NAME, current_scan
from vbsad_batch.weighting.datasets import (
    DATASETS_DIR_NAME,
    MANIFEST_KIND as DATASETS_MANIFEST_KIND,
    current_datasets,
)

__all__ = [
    "ProvenanceRow",
    "ReportInputs",
    "ReportWarning",
    "SampleRow",
    "StageKind",
    "StageOutput",
    "find_report_inputs",
]


StageKind = Literal["datasets", "model", "scores", "scan"]

_MANIFEST_KINDS: dict[StageKind, str] = {
    "datasets": DATASETS_MANIFEST_KIND,
    "model": MODEL_MANIFEST_KIND,
    "scores": SCORES_MANIFEST_KIND,
    "scan": SCAN_MANIFEST_KIND,
}


@dataclass(frozen=True, slots=True)
class ProvenanceRow:
    """One file the report rests on.

    Attributes:
        stage: "input" (a sample file), "datasets", "model", "scores" or "scan".
        name: the stage output it belongs to (e.g. "vae_latent3"), or the sample file's name.
        path: absolute path.
        size_bytes: size, bytes (None when the manifest does not record it).
        sha256: hex SHA-256 as recorded by the stage's manifest.
        made_by: tool and version (and UTC time when recorded) of the stage that wrote it.
    """

    stage: str
    name: str
    path: str
    size_bytes: int | None
    sha256: str
    made_by: str


@dataclass(frozen=True, slots=True)
class SampleRow:
    """One sample file as the datasets stage normalised it.

    Attributes:
        sample: the sample's name in the config.
        component: "sm", "lin", "quad" or "mix".
        operators: its operators, comma separated ("" for SM).
        path: the file.
        n_events: events in the file.
        xsec_pb: the cross section used, pb.
        xsec_error_pb: its stated error, pb (None when not stated).
        xsec_source: where it came from, in words (e.g. "the MadGraph banner").
        sum_weights: sum of the nominal event weights of the file.
        warnings: what the cross-section checks found.
    """

    sample: str
    component: str
    operators: str
    path: str
    n_events: int
    xsec_pb: float
    xsec_error_pb: float | None
    xsec_source: str
    sum_weights: float
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReportWarning:
    """A warning a stage recorded.

    Attributes:
        stage: "cross section" (a sample file's normalisation), or the stage that recorded it
            ("datasets", "model", "scores", "scan").
        name: the sample or stage output it concerns.
        message: the warning's text.
    """

    stage: str
    name: str
    message: str


@dataclass(frozen=True)
class StageOutput:
    """One complete stage output: a directory with its manifest.

    Attributes:
        stage: which stage wrote it.
        name: "datasets", "scan", or the model directory name (models and scores).
        directory: the directory.
        manifest: the manifest's content.
        manifest_sha256: SHA-256 of the manifest file.
    """

    stage: StageKind
    name: str
    directory: Path
    manifest: dict[str, Any]
    manifest_sha256: str

    @property
    def manifest_path(self) -> Path:
        """The manifest file."""
        return self.directory / MANIFEST_NAME

    @property
    def model_kind(self) -> str:
        """ "vae" or "vae_nn" for a model or its scores ("" for other stages)."""
        if self.stage == "model":
            return str(self.manifest.get("key", {}).get("kind", ""))
        if self.stage == "scores":
            return str(self.manifest.get("model_kind", ""))
        return ""

    def entries(self) -> list[dict[str, Any]]:
        """The manifest's output entries (`path`, `sha256`, `size_bytes`, ...)."""
        raw = self.manifest.get("outputs", [])
        return [e for e in raw if isinstance(e, dict) and "path" in e and "sha256" in e]

    def file_names(self) -> list[str]:
        """Names (relative paths) of the outputs listed in the manifest."""
        return [Path(str(e["path"])).name for e in self.entries()]

    def has(self, file_name: str) -> bool:
        """Whether the manifest lists `file_name`."""
        return file_name in self.file_names()

    def file(self, file_name: str) -> Path:
        """The path of output `file_name` (see `verify` for its checksum).

        Raises:
            FileNotFoundError: the manifest does not list it.
        """
        if file_name not in self.file_names():
            raise FileNotFoundError(f"{self.manifest_path}: lists no {file_name}")
        return self.directory / file_name

    def made_by(self) -> str:
        """Tool, version and (when recorded) UTC time of the run that wrote this output."""
        prov = self.manifest.get("provenance", {})
        if not isinstance(prov, dict):
            return "unknown"
        text = f"{prov.get('tool', 'vbsad_batch')} {prov.get('tool_version', '?')}"
        created = prov.get("created_utc")
        return f"{text}, {created}" if created else text

    def provenance_rows(self) -> list[ProvenanceRow]:
        """The manifest itself and every output it lists."""
        rows = [
            ProvenanceRow(
                self.stage,
                self.name,
                str(self.manifest_path),
                self.manifest_path.stat().st_size,
                self.manifest_sha256,
                self.made_by(),
            )
        ]
        for entry in self.entries():
            size = entry.get("size_bytes")
            rows.append(
                ProvenanceRow(
                    self.stage,
                    self.name,
                    str(self.directory / str(entry["path"])),
                    int(size) if isinstance(size, int) else None,
                    str(entry["sha256"]),
                    self.made_by(),
                )
            )
        return rows


@dataclass(frozen=True)
class ReportInputs:
    """The complete stage outputs of a config, and what is missing.

    Attributes:
        config: the analysis configuration.
        datasets: the datasets (always there: the report needs them).
        models: trained models, VAEs first, then by name.
        scores: scored models, in the order of `models` (scores without a model last).
        scan: the sensitivity scan, or None.
        missing: one sentence per expected output that is not there, with the command to run.
    """

    config: AnalysisConfig
    datasets: StageOutput
    models: tuple[StageOutput, ...]
    scores: tuple[StageOutput, ...]
    scan: StageOutput | None
    missing: tuple[str, ...]

    def stages(self) -> list[StageOutput]:
        """Every stage output, in pipeline order."""
        scan = [self.scan] if self.scan is not None else []
        return [self.datasets, *self.models, *self.scores, *scan]

    def verify(self) -> None:
        """Check every stage output the report shows through the stage contract: made for the
        config as it is now and every file unmodified (the samples are the datasets stage's
        business: its check fingerprints them).

        Raises:
            StaleInputError: one message naming every stale or modified stage output, each
                with the command that remakes it.
        """
        config = self.config
        checks: list[Callable[[], object]] = [lambda: current_datasets(config)]
        checks += [partial(current_model, config, m.directory) for m in self.models]
        checks += [partial(current_scores, config, s.name) for s in self.scores]
        if self.scan is not None:
            checks.append(partial(current_scan, config))
        problems: list[StaleInputError] = []
        for check in checks:
            try:
                check()
            except StaleInputError as exc:
                if all(str(exc) != str(p) for p in problems):
                    problems.append(exc)
        if problems:
            raise StaleInputError(
                "; ".join(str(p) for p in problems),
                path=problems[0].path,
                remake=problems[0].remake,
            )

    def scores_of(self, model_name: str) -> StageOutput | None:
        """The scores of the model named `model_name`, if scored."""
        return next((s for s in self.scores if s.name == model_name), None)

    def samples(self) -> list[SampleRow]:
        """Every sample file with its normalisation, from the datasets manifest."""
        rows: list[SampleRow] = []
        for comp in self.datasets.manifest.get("normalisations", []):
            for item in comp.get("files", []):
                source = str(item.get("xsec_source", ""))
                error = item.get("xsec_error_pb")
                rows.append(
                    SampleRow(
                        sample=str(comp.get("sample", "")),
                        component=str(comp.get("component", "")),
                        operators=",".join(comp.get("operators", [])),
                        path=str(item["path"]),
                        n_events=int(item["n_events"]),
                        xsec_pb=float(item["xsec_pb"]),
                        xsec_error_pb=None if error is None else float(error),
                        xsec_source=XSEC_SOURCE_TEXT.get(source, source),
                        sum_weights=float(item["sum_weights"]),
                        warnings=tuple(str(w) for w in item.get("warnings", [])),
                    )
                )
        return rows

    def warnings(self) -> list[ReportWarning]:
        """Every distinct warning: the samples' cross-section checks, then each stage's."""
        found = [
            ReportWarning("cross section", row.sample, message)
            for row in self.samples()
            for message in row.warnings
        ]
        for stage in self.stages():
            messages = stage.manifest.get("warnings", [])
            if isinstance(messages, list):
                found += [ReportWarning(stage.stage, stage.name, str(m)) for m in messages]
        return list(dict.fromkeys(found))

    def provenance_rows(self) -> list[ProvenanceRow]:
        """The sample files (from the datasets manifest), then every stage's files."""
        rows: list[ProvenanceRow] = []
        for item in self.datasets.manifest.get("inputs", []):
            if isinstance(item, dict) and "path" in item and "sha256" in item:
                size = item.get("size_bytes")
                rows.append(
                    ProvenanceRow(
                        "input",
                        Path(str(item["path"])).name,
                        str(item["path"]),
                        int(size) if isinstance(size, int) else None,
                        str(item["sha256"]),
                        "sample file",
                    )
                )
        for stage in self.stages():
            rows.extend(stage.provenance_rows())
        return rows


def expected_models(config: AnalysisConfig) -> list[ModelSpec]:
    """The models `vbsad run` trains: the config's grid of both kinds."""
    return config.models()


def _read_stage(stage: StageKind, name: str, directory: Path) -> StageOutput | None:
    manifest_path = directory / MANIFEST_NAME
    manifest = read_manifest(manifest_path)
    if manifest is None or manifest.get("kind") != _MANIFEST_KINDS[stage]:
        return None
    return StageOutput(stage, name, directory, manifest, sha256_file(manifest_path))


def _subdirectories(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _by_kind(outputs: Sequence[StageOutput]) -> list[StageOutput]:
    order = {"vae": 0, "vae_nn": 1}
    return sorted(outputs, key=lambda s: (order.get(s.model_kind, 2), s.name))


def find_report_inputs(config: AnalysisConfig) -> ReportInputs:
    """The complete stage outputs under `config.output_dir` and what is missing.

    Raises:
        FileNotFoundError: there are no datasets (the report needs at least them).
    """
    out = config.output_dir
    cfg = shlex.quote(str(config.path))
    datasets_dir = out / DATASETS_DIR_NAME
    datasets = _read_stage("datasets", "datasets", datasets_dir)
    if datasets is None:
        raise FileNotFoundError(
            f"{datasets_dir / MANIFEST_NAME}: no complete datasets; the report needs at least "
            f"them: run `vbsad datasets {cfg}` first"
        )
    missing: list[str] = []
    models = [
        m
        for d in _subdirectories(out / MODELS_DIR_NAME)
        if (m := _read_stage("model", d.name, d)) is not None
    ]
    scores = [
        s
        for d in _subdirectories(out / SCORES_DIR_NAME)
        if (s := _read_stage("scores", d.name, d)) is not None
    ]
    have_models = {m.name for m in models}
    have_scores = {s.name for s in scores}
    for spec in expected_models(config):
        if spec.name not in have_models:
            missing.append(
                f"model {spec.name}: not trained (no complete {out / MODELS_DIR_NAME / spec.name})"
                f"; run `{model_unit(config, spec).remake}`"
            )
    for model in models:
        if model.name not in have_scores:
            missing.append(
                f"scores of model {model.name}: not there; run "
                f"`{scores_unit(config, model.name).remake}`"
            )
    scan = _read_stage("scan", "scan", out / SCAN_DIR_NAME)
    if scan is None:
        missing.append(
            f"sensitivity scan: not there (no complete {out / SCAN_DIR_NAME}); run "
            f"`vbsad scan {cfg}`"
        )
    ordered_models = _by_kind(models)
    rank = {m.name: i for i, m in enumerate(ordered_models)}
    ordered_scores = sorted(scores, key=lambda s: (rank.get(s.name, len(rank)), s.name))
    return ReportInputs(
        config=config,
        datasets=datasets,
        models=tuple(ordered_models),
        scores=tuple(ordered_scores),
        scan=scan,
        missing=tuple(missing),
    )
