"""Shared fixtures: the real LHE test files in the sibling `shared/` checkout.

`shared/` is located as the repository's sibling directory (`<repo>/../shared`); set
VBSAD_SHARED_DIR to use another location.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from local_slurm import LocalSlurm

TESTS_DIR = Path(__file__).resolve().parent
# Make the helper modules next to the tests (lhe_reference.py) importable whatever
# pytest's import mode is.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


def shared_dir() -> Path:
    env = os.environ.get("VBSAD_SHARED_DIR")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2] / "shared"


SHARED_DIR = shared_dir()
LHE_DIR = SHARED_DIR / "testdata" / "lhe"
SSWW_DIR = SHARED_DIR / "testdata" / "ssww"

N_LHE_FILES = 18
N_SSWW_FILES = 3


REPO_DIR = TESTS_DIR.parent
REAL_EXAMPLE = REPO_DIR / "examples" / "ssww_real.toml"


def toml_without_table(text: str, table: str) -> str:
    """TOML `text` without the table `[table]`: its header, its keys and the comment lines
    just before it."""
    kept: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            inside = line.strip() == f"[{table}]"
            if inside:
                while kept and kept[-1].startswith("#"):
                    kept.pop()
        if not inside:
            kept.append(line)
    return "".join(kept)


def real_example_text(*, without: tuple[str, ...] = ()) -> str:
    """examples/ssww_real.toml with absolute paths to the shared samples, without the tables
    `without` (a test's own [training] replaces the example's)."""
    text = REAL_EXAMPLE.read_text(encoding="utf-8")
    text = text.replace('"../../shared/testdata/ssww/', f'"{SSWW_DIR.as_posix()}/')
    for table in without:
        text = toml_without_table(text, table)
    return text


def run_vbsad(
    *args: object,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """The `vbsad` command line in a fresh Python process, its output captured; a hang
    fails the calling test after `timeout` seconds instead of the suite."""
    return subprocess.run(
        [sys.executable, "-m", "vbsad_batch", *(str(a) for a in args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _list(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and (p.name.endswith(".lhe") or p.name.endswith(".lhe.gz"))
    )


LHE_FILES: list[Path] = _list(LHE_DIR)
SSWW_FILES: list[Path] = _list(SSWW_DIR)
ALL_FILES: list[Path] = LHE_FILES + SSWW_FILES


def _params(paths: list[Path]) -> list[object]:
    if not paths:
        return [
            pytest.param(
                None,
                id="missing-testdata",
                marks=pytest.mark.skip(reason=f"no test data under {SHARED_DIR}"),
            )
        ]
    return [pytest.param(p, id=p.name) for p in paths]


@pytest.fixture(scope="session")
def shared_testdata_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DIR} (set VBSAD_SHARED_DIR)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def lhe_files() -> list[Path]:
    """The 18 files of shared/testdata/lhe."""
    return LHE_FILES


@pytest.fixture(scope="session")
def ssww_files() -> list[Path]:
    """The 3 real SSWW samples of shared/testdata/ssww."""
    return SSWW_FILES


@pytest.fixture(params=_params(LHE_FILES))
def lhe_file(request: pytest.FixtureRequest) -> Path:
    """One file of shared/testdata/lhe (parametrised, id = file name)."""
    return request.param


@pytest.fixture(params=_params(SSWW_FILES))
def ssww_file(request: pytest.FixtureRequest) -> Path:
    """One file of shared/testdata/ssww (parametrised, id = file name)."""
    return request.param


@pytest.fixture(params=_params(ALL_FILES))
def real_file(request: pytest.FixtureRequest) -> Path:
    """Every real file, lhe/ and ssww/ (parametrised, id = file name)."""
    return request.param


def pytest_configure(config: pytest.Config) -> None:
    """The suite is built on the real files: without them it must fail, not skip."""
    if not (LHE_DIR.is_dir() and SSWW_DIR.is_dir()):
        raise pytest.UsageError(
            f"shared test data not found under {SHARED_DIR}: "
            "set VBSAD_SHARED_DIR to the folder holding testdata/lhe and testdata/ssww"
        )


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    """One private single-node Slurm (tests/local_slurm.py: munged, slurmctld, slurmd; 2 CPUs,
    4000 MB, partition `debug`) shared by every Slurm test of the session, always shut down
    at its end. Run clients with `slurm_cluster.env` / `.run()`; `make system-deps` installs
    Slurm (without it the fixture fails: SlurmNotInstalledError)."""
    from local_slurm import LocalSlurm  # noqa: PLC0415 - only the Slurm tests need it

    with LocalSlurm(tmp_path_factory.mktemp("slurm"), cpus=2, memory_mb=4000) as cluster:
        yield cluster
