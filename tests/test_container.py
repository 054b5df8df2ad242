"""The container image, built for real from `containers/vbsad.def` (`make image`: the
manylinux_2_28 wheel, then containers/image_builder with Apptainer's semantics) once per
session, and run unprivileged with Charliecloud's `ch-run`: its `%test` passes; `vbsad run
--quick` in it writes the host's table byte for byte; under the session's private Slurm,
`srun --mpi=pmi2 -n 2 ch-run --join` gives one MPI world of two ranks and the host's scan
table; the SquashFS and the SIF hold the same image. And the builder's failure modes: a
failing `%post` leaves nothing behind (no output, no temporary tree, no mount), a misspelled
section or an unsupported bootstrap is an error naming its line, and building needs root.

The first build of a machine debootstraps the base (cached in ~/.cache/vbsad_batch, reused by
later builds and by CI's clean clones); `make image` does nothing when the image is up to date.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_vbsad
from local_slurm import LocalSlurm
from test_scan_cli import SMALL_SCAN, write_config, write_synthetic_scores

REPO = Path(__file__).resolve().parents[1]
CONTAINERS = REPO / "containers"
if str(CONTAINERS) not in sys.path:
    sys.path.insert(0, str(CONTAINERS))

from image_builder.definition import DefinitionError, parse_definition  # noqa: E402

pytestmark = pytest.mark.slow

BUILD_TIMEOUT_S = 3000  # a first build: wheel (~3 min), debootstrap, pip, squashfs
RUN_TIMEOUT_S = 600
UNPRIVILEGED = "nobody"
IMAGE_DIR = REPO / "build" / "image"
BUILD_ARGS = {
    "MIRROR": "http://mirror.invalid/debian",
    "VERSION": "0",
    "GIT_REVISION": "0",
    "BUILD_DATE": "0",
    "TEST_LHE": "x.lhe",
}


# --- helpers ------------------------------------------------------------------------------------


def builder(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m image_builder ARGS` (as `user` when given), output captured."""
    env = {**os.environ, "PYTHONPATH": str(CONTAINERS)}
    prefix: list[str] = []
    python = sys.executable
    if user is not None:
        # the builder is standard library only: the system's python3 (the venv's may live
        # under root's home, which other users cannot enter)
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        prefix, env = _drop_to(user)
        env["PYTHONPATH"] = str(CONTAINERS)
    return subprocess.run(
        [*prefix, python, "-m", "image_builder", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def _drop_to(user: str) -> tuple[list[str], dict[str, str]]:
    entry = pwd.getpwnam(user)
    prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    env = {"USER": user, "HOME": "/tmp", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return [*prefix, "--"], env


def ch_run(image: Path, *command: str, options: tuple[str, ...] = ("--set-env",)) -> str:
    """`ch-run OPTIONS IMAGE -- COMMAND` as the unprivileged user; its stdout (a failure
    fails the test with both streams)."""
    prefix, env = _drop_to(UNPRIVILEGED)
    result = subprocess.run(
        [*prefix, "ch-run", *options, str(image), "--", *command],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout


def apt_mirror(suite: str = "bookworm") -> str:
    """The Debian mirror of this machine's apt configuration (as the Makefile finds it)."""
    result = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)"],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1] == suite:
            return fields[0]
    pytest.fail(f"no {suite} mirror in apt's configuration (apt-get indextargets)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        return [line for line in mountinfo if prefix in line]


@pytest.fixture(scope="session")
def built_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make image` once per session (it rebuilds only what changed); the image directory."""
    if os.geteuid() != 0:
        pytest.fail("building the image needs root (debootstrap, chroot), like apptainer build")
    log = tmp_path_factory.mktemp("image") / "make-image.log"
    lock = REPO / "build" / ".make-image.lock"  # one build at a time (concurrent sessions)
    lock.parent.mkdir(exist_ok=True)
    with open(log, "w", encoding="utf-8") as output:
        result = subprocess.run(
            ["flock", str(lock), "make", "image"],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        pytest.fail(f"make image failed (exit {result.returncode}), log {log}:\n{tail}")
    image = IMAGE_DIR / "vbsad"
    assert (IMAGE_DIR / "vbsad.sif.sha256").is_file()
    return image


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory under /tmp that the unprivileged user owns (pytest's are root's, 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="vbsad-container-"))
    entry = pwd.getpwnam(UNPRIVILEGED)
    os.chown(directory, entry.pw_uid, entry.pw_gid)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _give_to_unprivileged(path: Path) -> None:
    subprocess.run(["chown", "-R", f"{UNPRIVILEGED}:", str(path)], check=True)


# --- the built image ----------------------------------------------------------------------------


@pytest.mark.timeout(BUILD_TIMEOUT_S + RUN_TIMEOUT_S)
def test_test_section_passes_unprivileged_on_the_read_only_image(built_image: Path) -> None:
    assert ch_run(built_image, "id", "-u", options=()).strip() == str(
        pwd.getpwnam(UNPRIVILEGED).pw_uid
    )
    result = builder("test", str(built_image), "--test-user", UNPRIVILEGED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tensorflow 2." in result.stdout
    assert "ingest: ssww_SM.parquet: 2000 rows" in result.stdout
    assert "vbsad image: %test passed" in result.stdout
    # read-only: the image cannot be written, even by the environment's own tools
    prefix, env = _drop_to(UNPRIVILEGED)
    denied = subprocess.run(
        [*prefix, "ch-run", str(built_image), "--", "touch", "/opt/vbsad/x"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert denied.returncode != 0
    assert "Read-only file system" in denied.stderr


@pytest.mark.timeout(BUILD_TIMEOUT_S + RUN_TIMEOUT_S)
def test_squashfs_sif_checksum_and_labels_are_the_same_image(built_image: Path) -> None:
    host_version = run_vbsad("--version").stdout.strip()
    squashfs = IMAGE_DIR / "vbsad.sqfs"
    sif = IMAGE_DIR / "vbsad.sif"
    assert ch_run(squashfs, "vbsad", "--version").strip() == host_version
    assert ch_run(built_image, "vbsad", "--version").strip() == host_version

    listing = subprocess.run(
        ["siftool", "list", str(sif)], capture_output=True, text=True, check=False
    )
    assert listing.returncode == 0, listing.stderr
    assert "Def.FILE" in listing.stdout
    assert "JSON.Labels" in listing.stdout
    assert "FS (Squashfs/*System/amd64)" in listing.stdout  # the primary system partition
    partition = next(
        line.split("|")[0].strip() for line in listing.stdout.splitlines() if "Squashfs" in line
    )
    dump = subprocess.run(
        ["siftool", "dump", partition, str(sif)], capture_output=True, check=False
    )
    assert dump.returncode == 0, dump.stderr
    assert hashlib.sha256(dump.stdout).hexdigest() == _sha256(squashfs)  # round-trips

    recorded, name = (IMAGE_DIR / "vbsad.sif.sha256").read_text().split()
    assert (name, recorded) == ("vbsad.sif", _sha256(sif))

    labels = json.loads((built_image / ".singularity.d" / "labels.json").read_text())
    assert labels["org.opencontainers.image.version"] == host_version.split()[-1]
    assert labels["org.opencontainers.image.revision"]
    assert labels["org.vbsad.build-date"]
    assert labels["org.label-schema.usage.singularity.deffile.osversion"] == "bookworm"
    assert labels["org.vbsad.python"].startswith("3.11")
    runscript = (built_image / ".singularity.d" / "runscript").read_text()
    assert 'exec vbsad "$@"' in runscript
    assert "MPLCONFIGDIR=/tmp" in (built_image / "ch" / "environment").read_text()


@pytest.mark.timeout(BUILD_TIMEOUT_S + 2 * RUN_TIMEOUT_S)
def test_quick_run_in_the_image_writes_the_hosts_table(built_image: Path, shared_tmp: Path) -> None:
    host = run_vbsad("run", "--quick", "--output", shared_tmp / "host", "-q")
    assert host.returncode == 0, host.stderr
    ch_run(built_image, "vbsad", "run", "--quick", "--output", str(shared_tmp / "image"), "-q")
    for name in ("table.md", "table.csv", "table.json"):
        made_here = (shared_tmp / "host" / "scan" / name).read_bytes()
        made_in_image = (shared_tmp / "image" / "scan" / name).read_bytes()
        assert made_in_image == made_here, f"scan/{name} differs between host and image"


@pytest.mark.timeout(BUILD_TIMEOUT_S + 2 * RUN_TIMEOUT_S)
def test_mpi_scan_under_slurm_in_the_image(
    built_image: Path, slurm_cluster: LocalSlurm, shared_tmp: Path
) -> None:
    config = write_config(shared_tmp, SMALL_SCAN)
    write_synthetic_scores(shared_tmp / "out")
    scan_dir = shared_tmp / "out" / "scan"
    on_host = run_vbsad("scan", config)
    assert on_host.returncode == 0, on_host.stderr
    assert "on 1 rank(s)" in on_host.stdout
    host_files = {p.name: p.read_bytes() for p in scan_dir.iterdir() if p.name != "manifest.json"}
    shutil.rmtree(scan_dir)
    _give_to_unprivileged(shared_tmp)

    # The hybrid model: the host's Slurm launches one container per rank; MPICH inside
    # talks PMI-2 to srun (without --join, UCX complains; mpiexec in the image would hang).
    # The job itself runs as root (the session cluster's spool is in pytest's private temp
    # dir, which `sbatch --uid` users cannot enter); each rank drops to the unprivileged
    # user before ch-run, keeping srun's PMI-2 descriptor.
    entry = pwd.getpwnam(UNPRIVILEGED)
    drop = f"setpriv --reuid={entry.pw_uid} --regid={entry.pw_gid} --clear-groups --"
    script = shared_tmp / "scan_in_image.sbatch"
    script.write_text(
        "#!/bin/bash\n"
        "set -euo pipefail\n"
        f"export USER={UNPRIVILEGED} HOME=/tmp\n"
        f"srun --mpi=pmi2 -n 2 {drop} ch-run --join --set-env {built_image} -- "
        f"vbsad scan {config}\n"
    )
    output = shared_tmp / "job.out"
    job = slurm_cluster.sbatch(script, "--ntasks=2", f"--output={output}", cwd=shared_tmp)
    [record] = slurm_cluster.wait(job, timeout=RUN_TIMEOUT_S)
    log = output.read_text() if output.exists() else "(no job output)"
    assert record.state == "COMPLETED", log
    assert "on 2 rank(s)" in log, log  # one MPI world of two ranks, not two worlds of one
    assert log.count("written: ") == 1, log  # only rank 0 writes and prints
    for name, content in host_files.items():
        assert (scan_dir / name).read_bytes() == content, f"scan/{name} differs from the host's"
    assert (scan_dir / "table.md").stat().st_uid == pwd.getpwnam(UNPRIVILEGED).pw_uid


@pytest.mark.timeout(BUILD_TIMEOUT_S + 3 * RUN_TIMEOUT_S)
def test_submit_runs_the_whole_workflow_in_the_image(
    built_image: Path, slurm_cluster: LocalSlurm, tmp_path: Path
) -> None:
    """`vbsad submit --container`: every job of the quick demo runs vbsad in the squashfs
    image under the local Slurm (the scan as two ch-run ranks joined in one MPI world), the
    table equals the host's `vbsad run --quick`, and submission.json records the image. The
    jobs run as root, owner of tmp_path (ch-run maps root to the files' owner: its user
    namespace has no power over other users' files)."""
    from vbsad_batch.demo.demo_config import DEMO_QUICK  # noqa: PLC0415
    from vbsad_batch.demo.prepare import prepare_demo  # noqa: PLC0415

    host = run_vbsad("run", "--quick", "--output", tmp_path / "host", "-q")
    assert host.returncode == 0, host.stderr
    config, _ = prepare_demo(tmp_path / "cluster", DEMO_QUICK)
    image = IMAGE_DIR / "vbsad.sqfs"
    submit = run_vbsad(
        "submit",
        config,
        "--container",
        image,
        "--container-exec",
        "ch-run {join} --set-env {image} -- vbsad",
        "--resource",
        "scan.ntasks=2",
        env=slurm_cluster.env,
    )
    assert submit.returncode == 0, submit.stderr
    out = config.parent
    document = json.loads((out / "slurm" / "submission.json").read_text())
    submission = document["submissions"][-1]
    assert submission["container"] == {
        "image": str(image),
        "sha256": _sha256(image),
        "exec": "ch-run {join} --set-env {image} -- vbsad",
    }
    for job in submission["jobs"]:
        records = slurm_cluster.wait(job["job_id"], timeout=RUN_TIMEOUT_S)
        logs = {p.name: p.read_text() for p in (out / "slurm" / "logs").iterdir()}
        assert {r.state for r in records} == {"COMPLETED"}, (records, sorted(logs.items())[-1])
    scan_log = next(text for name, text in logs.items() if name.startswith("vbsad-scan_"))
    assert f"step: srun --mpi=pmi2 ch-run --join --set-env {image} -- vbsad scan" in scan_log
    assert "on 2 rank(s)" in scan_log
    train_log = next(text for name, text in logs.items() if name.startswith("vbsad-train_"))
    assert f"step: ch-run --set-env {image} -- vbsad train" in train_log
    for name in ("table.md", "table.csv"):
        made_in_image = (out / "scan" / name).read_bytes()
        assert made_in_image == (tmp_path / "host" / "scan" / name).read_bytes(), name


# --- the builder's failure modes ----------------------------------------------------------------


@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_a_failing_post_leaves_nothing_behind(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the builder needs root")
    definition = tmp_path / "failing.def"
    definition.write_text(
        "Bootstrap: debootstrap\n"
        "OSVersion: bookworm\n"
        "MirrorURL: {{ MIRROR }}\n"
        "\n"
        "%post\n"
        "    # the build's mounts are there while %post runs ...\n"
        "    grep -q ' /proc ' /proc/self/mounts\n"
        "    grep -q ' /root/.cache/pip ' /proc/self/mounts\n"
        "    touch /half-made\n"
        "    exit 3\n"
    )
    output = tmp_path / "out"
    pip_cache = tmp_path / "pip-cache"
    result = builder(
        "build",
        str(definition),
        "--output",
        str(output),
        "--pip-cache",
        str(pip_cache),
        "--build-arg",
        f"MIRROR={apt_mirror()}",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "%post of stage stage0 (line 5) failed (exit status 3)" in result.stderr
    assert "+ touch /half-made" in result.stderr + result.stdout  # it did run, with sh -x
    # ... and none of it is left: no output directory, no temporary tree, no mount
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failing.def", "pip-cache"]
    assert list(pip_cache.iterdir()) == []
    assert _mounts_below(tmp_path) == []


@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_a_killed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    """SIGTERM during %post: the build's processes, mounts and files all go."""
    if os.geteuid() != 0:
        pytest.fail("the builder needs root")
    definition = tmp_path / "slow.def"
    definition.write_text(
        "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: {{ MIRROR }}\n\n"
        "%post\n    touch /root/.cache/pip/started\n    sleep 4242 &\n    sleep 4243\n"
    )
    output, pip_cache = tmp_path / "out", tmp_path / "pip-cache"
    command = [sys.executable, "-m", "image_builder", "build", str(definition)]
    command += ["--output", str(output), "--pip-cache", str(pip_cache)]
    command += ["--build-arg", f"MIRROR={apt_mirror()}"]
    env = {**os.environ, "PYTHONPATH": str(CONTAINERS)}
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as build:
        deadline = time.monotonic() + RUN_TIMEOUT_S / 2
        while not (pip_cache / "started").exists():
            assert build.poll() is None, build.communicate()
            assert time.monotonic() < deadline, "%post never started"
            time.sleep(0.2)
        build.terminate()
        _, stderr = build.communicate(timeout=60)
    assert build.returncode == 130, stderr
    assert b"interrupted; nothing was left behind" in stderr
    assert not output.exists()
    assert _mounts_below(tmp_path) == []
    sleepers = [
        pid
        for pid in os.listdir("/proc")
        if pid.isdigit() and _cmdline(pid) in (b"sleep\x004242\x00", b"sleep\x004243\x00")
    ]
    assert sleepers == [], "processes of %post survived the build"


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_misspelled_section_is_an_error_naming_it(tmp_path: Path) -> None:
    text = (
        "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: {{ MIRROR }}\n\n"
        "%post\n    true\n\n%enviroment\n    export A=1\n"
    )
    with pytest.raises(DefinitionError) as error:
        parse_definition(text, "typo.def", {"MIRROR": "http://m"})
    assert str(error.value) == (
        "typo.def:8: unknown section %enviroment (did you mean %environment?)"
    )
    definition = tmp_path / "typo.def"
    definition.write_text(text)
    result = builder("check", str(definition), "--build-arg", "MIRROR=http://m")
    assert result.returncode == 1
    assert f"{definition}:8: unknown section %enviroment" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "Bootstrap: docker\nFrom: debian:bookworm\n",
            "x.def:2: header key From: is not supported by this builder",
            id="docker-from",
        ),
        pytest.param(
            "Bootstrap: docker\n",
            "x.def:1: Bootstrap: docker is not supported by this builder: nothing can be "
            "pulled from a container registry here",
            id="docker",
        ),
        pytest.param(
            "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: {{ MIROR }}\n",
            "x.def:3: build argument {{ MIROR }} has no value: pass --build-arg MIROR=VALUE",
            id="missing-build-arg",
        ),
        pytest.param(
            "Bootstrap: debootstrap\nOSVersoin: bookworm\n",
            "x.def:2: unknown header key OSVersoin: (did you mean osversion?)",
            id="misspelled-key",
        ),
        pytest.param(
            "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: m\n%setup\n    true\n",
            "x.def:4: section %setup is not supported by this builder",
            id="setup",
        ),
        pytest.param(
            "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: m\n"
            "%files from build\n    /opt/x\n",
            "x.def:4: %files from build: no earlier stage is named build",
            id="unknown-stage",
        ),
        pytest.param(
            "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: m\nStage: a\n"
            "%runscript\n    exec true\n"
            "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: m\n",
            "x.def:5: %runscript in stage a: only the final stage's %runscript reaches the image",
            id="metadata-in-an-early-stage",
        ),
        pytest.param(
            "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: m\n%post\n    a\n%post\n",
            "x.def:6: %post appears twice in stage stage0 (first on line 4)",
            id="duplicate",
        ),
    ],
)
def test_definition_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DefinitionError) as error:
        parse_definition(text, "x.def", {"MIRROR": "m"})
    assert str(error.value).startswith(message), str(error.value)


def test_the_definition_parses_into_two_stages() -> None:
    result = builder(
        "check", "containers/vbsad.def", *(f"--build-arg={k}={v}" for k, v in BUILD_ARGS.items())
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "stage build: debootstrap bookworm: ['%files', '%post']",
        "stage final: debootstrap bookworm: ['%files from build', '%files', '%post', "
        "'%environment', '%runscript', '%test', '%help', '%labels']",
    ]


def test_building_needs_root() -> None:
    result = builder(
        "build",
        "containers/vbsad.def",
        "--output",
        "/tmp/never-made",
        *(f"--build-arg={k}={v}" for k, v in BUILD_ARGS.items()),
        user=UNPRIVILEGED,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "building an image from a definition needs root" in result.stderr
    assert not Path("/tmp/never-made").exists()
