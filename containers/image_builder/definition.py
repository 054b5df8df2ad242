"""Apptainer definition files: build-argument substitution, parsing, validation.

The grammar is Apptainer's: a header of `Key: value` lines (keys case-insensitive, `#`
comments) starting with `Bootstrap:`, then sections: a line whose first word is `%name`
starts one (`%name [args]`), its body runs up to the next such line. Every `Bootstrap:` line
starts a new stage (multi-stage builds; `Stage: NAME` names it so that a later `%files from
NAME` can copy out of it). `{{ NAME }}` is replaced by the value of `--build-arg NAME=VALUE`
before parsing, anywhere in the file.

Stricter than Apptainer where a silent surprise is worse than an error: sections and header
keys this builder does not implement are rejected (not ignored), an unknown section or key is
an error that names its line and the closest known name, and the sections that end up in the
image (`%environment`, `%runscript`, `%test`, `%help`, `%labels`) are only accepted in the
final stage (Apptainer would build them into an intermediate stage and drop them).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Sections this builder implements.
SUPPORTED_SECTIONS = ("files", "post", "environment", "runscript", "test", "help", "labels")
#: Sections of the final image only (metadata under /.singularity.d).
IMAGE_SECTIONS = ("environment", "runscript", "test", "help", "labels")
#: Apptainer sections that exist but are not implemented here, with the reason.
UNSUPPORTED_SECTIONS = {
    "setup": "it runs on the build host as root; use %files and %post",
    "pre": "it runs on the build host as root; use %files and %post",
    "startscript": "instances are not supported",
    "arguments": "pass every build argument with --build-arg NAME=VALUE",
    **{
        f"app{kind}": "SCIF apps are not supported"
        for kind in ("install", "labels", "files", "env", "test", "help", "run", "start")
    },
}
SUPPORTED_HEADER_KEYS = ("bootstrap", "osversion", "mirrorurl", "include", "stage")
#: Apptainer header keys of other bootstrap agents.
UNSUPPORTED_HEADER_KEYS = (
    "from",
    "registry",
    "namespace",
    "confurl",
    "fingerprints",
    "setopt",
    "product",
    "user",
    "regcode",
    "productpgp",
    "registerurl",
    "modules",
    "library",
    "updateurl",
)
SUPPORTED_BOOTSTRAPS = ("debootstrap",)
UNSUPPORTED_BOOTSTRAPS = {
    "docker": "nothing can be pulled from a container registry here",
    "docker-archive": "only debootstrap bases are built here",
    "docker-daemon": "only debootstrap bases are built here",
    "oci": "only debootstrap bases are built here",
    "oci-archive": "only debootstrap bases are built here",
    "library": "nothing can be pulled from a container library here",
    "oras": "nothing can be pulled from a container registry here",
    "shub": "nothing can be pulled from a container registry here",
    "localimage": "only debootstrap bases are built here",
    "yum": "only Debian (debootstrap) bases are built here",
    "zypper": "only Debian (debootstrap) bases are built here",
    "arch": "only Debian (debootstrap) bases are built here",
    "busybox": "only Debian (debootstrap) bases are built here",
    "scratch": "only debootstrap bases are built here",
}

_BUILD_ARG = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SECTION = re.compile(r"\s*%(\S+)(.*)$")  # as Apptainer: a line whose first word starts with %
_HEADER = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)\s*:\s*(.*)$")
_BOOTSTRAP_LINE = re.compile(r"bootstrap\s*:", re.IGNORECASE)


class DefinitionError(ValueError):
    """An invalid definition file; the message names the file and the line."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = message
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class FileCopy:
    """One `%files` line: `source [destination]` (no destination: the same path)."""

    source: str
    destination: str
    line: int


@dataclass(frozen=True)
class FilesSection:
    """A `%files` section; `from_stage` names the stage of `%files from STAGE`, None for the
    build host."""

    from_stage: str | None
    copies: tuple[FileCopy, ...]
    line: int


@dataclass(frozen=True)
class Script:
    """The body of a script section, its arguments (`%post -c /bin/bash`) and its line."""

    text: str
    args: str
    line: int


@dataclass(frozen=True)
class Stage:
    """One `Bootstrap:` block of the definition."""

    name: str
    index: int
    line: int
    header: Mapping[str, str]
    files: tuple[FilesSection, ...] = ()
    post: Script | None = None
    environment: Script | None = None
    runscript: Script | None = None
    test: Script | None = None
    help: Script | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.header["bootstrap"]

    @property
    def os_version(self) -> str:
        return self.header["osversion"]

    @property
    def mirror_url(self) -> str:
        return self.header["mirrorurl"]

    @property
    def include(self) -> tuple[str, ...]:
        """Extra packages for debootstrap (`Include:`, space- or comma-separated)."""
        return tuple(p for p in re.split(r"[\s,]+", self.header.get("include", "")) if p)


@dataclass(frozen=True)
class Definition:
    """A parsed definition: its stages in build order (the last one is the image)."""

    path: Path
    text: str
    stages: tuple[Stage, ...]
    unused_build_args: tuple[str, ...]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


def _suggest(word: str, candidates: tuple[str, ...] | list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def substitute_build_args(
    text: str, build_args: Mapping[str, str], path: Path | str
) -> tuple[str, tuple[str, ...]]:
    """Replace every `{{ NAME }}` by its build argument; return the text and the names of
    the build arguments it did not use. A placeholder without a value is an error naming
    its line; a value may not contain a newline (it would shift every later line)."""
    for name, value in build_args.items():
        if "\n" in value:
            raise DefinitionError(path, None, f"build argument {name} contains a newline")
    used: set[str] = set()
    lines = []
    for number, line in enumerate(text.split("\n"), start=1):

        def value_of(match: re.Match[str], number: int = number) -> str:
            name = match.group(1)
            if name not in build_args:
                known = ", ".join(sorted(build_args)) or "none"
                raise DefinitionError(
                    path,
                    number,
                    f"build argument {{{{ {name} }}}} has no value: pass "
                    f"--build-arg {name}=VALUE (given: {known})",
                )
            used.add(name)
            return build_args[name]

        lines.append(_BUILD_ARG.sub(value_of, line))
    return "\n".join(lines), tuple(sorted(set(build_args) - used))


@dataclass
class _RawSection:
    name: str
    args: str
    line: int
    body: list[str] = field(default_factory=list)


@dataclass
class _RawStage:
    line: int
    header: dict[str, str] = field(default_factory=dict)
    header_lines: dict[str, int] = field(default_factory=dict)
    sections: list[_RawSection] = field(default_factory=list)


def _split(text: str, path: Path) -> list[_RawStage]:
    """Lines -> stages of header keys and raw sections, rejecting unknown names."""
    stages: list[_RawStage] = []
    section: _RawSection | None = None
    known_sections = [*SUPPORTED_SECTIONS, *UNSUPPORTED_SECTIONS]
    known_keys = [*SUPPORTED_HEADER_KEYS, *UNSUPPORTED_HEADER_KEYS]
    for number, line in enumerate(text.split("\n"), start=1):
        if _BOOTSTRAP_LINE.match(line):
            stages.append(_RawStage(line=number))
            section = None
        section_match = _SECTION.match(line)
        if section_match:
            name = section_match.group(1).lower()
            if name not in known_sections:
                raise DefinitionError(
                    path,
                    number,
                    f"unknown section %{section_match.group(1)}"
                    + _suggest(name, known_sections, "%"),
                )
            if name in UNSUPPORTED_SECTIONS:
                raise DefinitionError(
                    path,
                    number,
                    f"section %{name} is not supported by this builder: "
                    f"{UNSUPPORTED_SECTIONS[name]}",
                )
            if not stages:
                raise DefinitionError(path, number, "a section before the first Bootstrap:")
            section = _RawSection(name, section_match.group(2).strip(), number)
            stages[-1].sections.append(section)
            continue
        if section is not None:
            section.body.append(line)
            continue
        stripped = line.split("#")[0].strip()  # comments, also after a value
        if not stripped:
            continue
        header_match = _HEADER.match(stripped)
        if header_match is None or not stages:
            raise DefinitionError(
                path,
                number,
                "expected a header line `Key: value` (the file starts with Bootstrap:) "
                f"or a %section, got {stripped!r}",
            )
        key, value = header_match.group(1).lower(), header_match.group(2).strip()
        if key not in known_keys:
            raise DefinitionError(
                path,
                number,
                f"unknown header key {header_match.group(1)}:" + _suggest(key, known_keys),
            )
        if key in UNSUPPORTED_HEADER_KEYS:
            raise DefinitionError(
                path,
                number,
                f"header key {header_match.group(1)}: is not supported by this builder "
                "(it belongs to a bootstrap agent other than debootstrap)",
            )
        stage = stages[-1]
        if key in stage.header:
            raise DefinitionError(
                path, number, f"{key} is set twice (first on line {stage.header_lines[key]})"
            )
        stage.header[key] = value
        stage.header_lines[key] = number
    if not stages:
        raise DefinitionError(path, None, "no Bootstrap: line: the definition is empty")
    return stages


def _script(section: _RawSection, path: Path, allow_shell_option: bool = False) -> Script:
    args = section.args.split("#")[0].strip()
    if args and not (allow_shell_option and re.fullmatch(r"-c\s+\S.*", args)):
        allowed = " (only `-c SHELL`)" if allow_shell_option else ""
        raise DefinitionError(
            path, section.line, f"%{section.name} takes no arguments{allowed}, got {args!r}"
        )
    body = list(section.body)
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    return Script("\n".join(body), args, section.line)


def _files(section: _RawSection, path: Path, earlier: list[str]) -> FilesSection:
    args = section.args.split("#")[0].split()
    from_stage: str | None = None
    if args:
        if len(args) != 2 or args[0] != "from":
            raise DefinitionError(
                path, section.line, f"%files takes no arguments or `from STAGE`, got {args!r}"
            )
        from_stage = args[1]
        if from_stage not in earlier:
            raise DefinitionError(
                path,
                section.line,
                f"%files from {from_stage}: no earlier stage is named {from_stage} "
                f"(earlier stages: {', '.join(earlier) or 'none'})",
            )
    copies = []
    for offset, raw in enumerate(section.body, start=1):
        fields = raw.split("#")[0].split()
        if not fields:
            continue
        if len(fields) > 2:
            raise DefinitionError(
                path,
                section.line + offset,
                f"%files expects `SOURCE [DESTINATION]`, got {raw.strip()!r}",
            )
        destination = fields[1] if len(fields) == 2 else ""
        copies.append(FileCopy(fields[0], destination, section.line + offset))
    return FilesSection(from_stage, tuple(copies), section.line)


def _labels(section: _RawSection, path: Path) -> dict[str, str]:
    if section.args.split("#")[0].strip():
        raise DefinitionError(path, section.line, "%labels takes no arguments")
    labels = {}
    for raw in section.body:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, _, value = stripped.partition(" ")
        labels[key] = value.strip()
    return labels


def _stage(raw: _RawStage, index: int, count: int, path: Path, earlier: list[str]) -> Stage:
    bootstrap = raw.header.get("bootstrap", "")
    if bootstrap.lower() in UNSUPPORTED_BOOTSTRAPS:
        raise DefinitionError(
            path,
            raw.line,
            f"Bootstrap: {bootstrap} is not supported by this builder: "
            f"{UNSUPPORTED_BOOTSTRAPS[bootstrap.lower()]}; use Bootstrap: debootstrap",
        )
    if bootstrap not in SUPPORTED_BOOTSTRAPS:
        raise DefinitionError(
            path,
            raw.line,
            f"unknown bootstrap agent {bootstrap!r}"
            + _suggest(bootstrap.lower(), list(SUPPORTED_BOOTSTRAPS)),
        )
    for key in ("osversion", "mirrorurl"):
        if not raw.header.get(key):
            raise DefinitionError(
                path, raw.line, f"Bootstrap: debootstrap needs a {key} header (e.g. OSVersion:)"
            )
    name = raw.header.get("stage") or f"stage{index}"
    if name in earlier:
        raise DefinitionError(path, raw.line, f"two stages are named {name}")
    final = index == count - 1
    files: list[FilesSection] = []
    scripts: dict[str, Script] = {}
    labels: dict[str, str] = {}
    seen: dict[str, int] = {}
    for section in raw.sections:
        if section.name in IMAGE_SECTIONS and not final:
            raise DefinitionError(
                path,
                section.line,
                f"%{section.name} in stage {name}: only the final stage's %{section.name} "
                "reaches the image; move it to the last stage",
            )
        if section.name != "files":
            if section.name in seen:
                raise DefinitionError(
                    path,
                    section.line,
                    f"%{section.name} appears twice in stage {name} "
                    f"(first on line {seen[section.name]})",
                )
            seen[section.name] = section.line
        if section.name == "files":
            files.append(_files(section, path, earlier))
        elif section.name == "labels":
            labels = _labels(section, path)
        else:
            scripts[section.name] = _script(section, path, section.name == "post")
    return Stage(
        name=name,
        index=index,
        line=raw.line,
        header=dict(raw.header),
        files=tuple(files),
        post=scripts.get("post"),
        environment=scripts.get("environment"),
        runscript=scripts.get("runscript"),
        test=scripts.get("test"),
        help=scripts.get("help"),
        labels=labels,
    )


def parse_definition(
    text: str, path: Path | str = "<definition>", build_args: Mapping[str, str] | None = None
) -> Definition:
    """Substitute the build arguments into `text` and parse it (see the module docstring)."""
    path = Path(path)
    substituted, unused = substitute_build_args(text, build_args or {}, path)
    raw_stages = _split(substituted, path)
    stages: list[Stage] = []
    for index, raw in enumerate(raw_stages):
        stages.append(_stage(raw, index, len(raw_stages), path, [s.name for s in stages]))
    return Definition(path, substituted, tuple(stages), unused)


def load_definition(path: Path, build_args: Mapping[str, str] | None = None) -> Definition:
    """Read and parse a definition file (errors name the file and the line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DefinitionError(path, None, f"cannot read the definition: {error}") from error
    return parse_definition(text, path, build_args)
