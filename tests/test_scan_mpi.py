"""The scan across MPI ranks, under a REAL `mpiexec -n 2` (the MPICH wheel's launcher next to
the test interpreter): the world size inside, byte-identical outputs for 1 and 2 ranks, and a
failing rank that makes the run fail with that rank's error, on every rank, without a hang.
Plus `map_work` / `run_on_root` in one process (the size-1 fallback)."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_vbsad
from test_scan_cli import SMALL_SCAN, write_config, write_synthetic_scores

from vbsad_batch.runtime.mpi import RankFailure, SingleProcess, map_work, run_on_root, world

TIMEOUT_S = 120  # a hang fails the test instead of the suite


@pytest.fixture
def synthetic_config(tmp_path: Path) -> Path:
    config = write_config(tmp_path, SMALL_SCAN)
    write_synthetic_scores(tmp_path / "out")
    return config


def mpiexec() -> str:
    """The MPI launcher of the test interpreter's environment (the `mpi` extra's MPICH)."""
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(
            f"mpiexec not found next to {sys.executable}: install the 'mpi' extra "
            "(pip install 'vbsad_batch[mpi]', i.e. mpi4py and the mpich wheel)"
        )
    return found


def run_mpi(ranks: int, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [mpiexec(), "-n", str(ranks), sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
        cwd=cwd,
    )


# --- under mpiexec ------------------------------------------------------------------------------


def test_world_has_two_ranks_under_mpiexec() -> None:
    code = (
        "from vbsad_batch.runtime.mpi import world; c = world(); "
        "print(f'rank {c.rank} of {c.size} {type(c).__module__}', flush=True)"
    )
    proc = run_mpi(2, "-c", code)
    assert proc.returncode == 0, proc.stderr
    # the ranks' lines may interleave on the shared stdout
    found = sorted(re.findall(r"rank (\d) of (\d) (mpi4py\.MPI|\S+)", proc.stdout))
    assert found == [("0", "2", "mpi4py.MPI"), ("1", "2", "mpi4py.MPI")]


def test_map_work_gathers_in_item_order_and_reports_a_failing_rank(tmp_path: Path) -> None:
    script = tmp_path / "work.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from vbsad_batch.runtime.mpi import RankFailure, map_work, world

            comm = world()
            assert comm.size == 2, comm.size
            fail_on = int(sys.argv[1])

            def square(i: int) -> tuple[int, int]:
                if i == fail_on:
                    raise ValueError(f"boom on item {i}")
                return (comm.rank, i * i)

            try:
                result = map_work(list(range(7)), square)
            except RankFailure as exc:  # one file per rank: their stdout lines may interleave
                with open(f"{sys.argv[2]}/rank{comm.rank}.txt", "w") as f:
                    f.write(str(exc))
                sys.exit(3)
            if comm.rank == 0:
                print(result, flush=True)
            else:
                assert result is None
            """
        )
    )
    proc = run_mpi(2, str(script), "-1", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    # round robin: even items on rank 0, odd ones on rank 1; rank 0 prints them in order
    assert proc.stdout.strip() == str([(i % 2, i * i) for i in range(7)])

    proc = run_mpi(2, str(script), "3", str(tmp_path))  # item 3 runs on rank 1
    assert proc.returncode != 0
    expected = "rank 1 failed on work item 3 3: ValueError: boom on item 3"
    for rank in (0, 1):  # every rank raised the error of rank 1
        assert (tmp_path / f"rank{rank}.txt").read_text() == expected


def test_one_and_two_ranks_write_identical_outputs(tmp_path: Path) -> None:
    config = write_config(tmp_path, SMALL_SCAN)
    write_synthetic_scores(tmp_path / "out", mix=[("cW", "cHW")])
    scan_dir = tmp_path / "out" / "scan"

    single = run_vbsad("scan", config, timeout=TIMEOUT_S)
    assert single.returncode == 0, single.stderr
    assert "on 1 rank(s)" in single.stdout
    one = {p.name: p.read_bytes() for p in sorted(scan_dir.iterdir())}
    shutil.rmtree(scan_dir)

    double = run_mpi(2, "-m", "vbsad_batch", "scan", str(config))
    assert double.returncode == 0, double.stderr
    assert double.stdout.count("written: ") == 1  # only rank 0 prints
    assert "(14 work item(s) on 2 rank(s))" in double.stdout  # 12 + 2 contours
    two = {p.name: p.read_bytes() for p in sorted(scan_dir.iterdir())}
    assert sorted(two) == [
        "contour_grid.parquet",
        "contours.parquet",
        "curves.parquet",
        "manifest.json",
        "sigma_curves.parquet",
        "table.csv",
        "table.json",
        "table.md",
    ]
    assert pq.read_metadata(scan_dir / "contours.parquet").num_rows > 0
    for name, content in one.items():
        assert two[name] == content, f"{name} differs between 1 and 2 ranks"

    again = run_mpi(2, "-m", "vbsad_batch", "scan", str(config))
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout


def test_a_failing_rank_fails_the_cli_run_on_every_rank(tmp_path: Path) -> None:
    config = write_config(tmp_path, SMALL_SCAN)
    # One score file holds a NaN: the work items of quad_test_cHW fail wherever they run.
    write_synthetic_scores(
        tmp_path / "out", models=(("vae_latent3", "vae"),), nan_in="quad_test_cHW"
    )
    proc = run_mpi(2, "-m", "vbsad_batch", "scan", str(config))
    assert proc.returncode != 0
    # Items: cW point, 2 chunks (0-2), cHW point (3: rank 1), ... -> rank 1 fails first.
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vbsad: error:")]
    assert len(errors) == 1, proc.stderr  # reported once, by rank 0
    assert "rank 1 failed on work item 3" in errors[0]
    assert "quad_test_cHW.parquet: 1 non-finite value(s) in column 'mse'" in errors[0]
    assert "(and 1 more failure(s))" in errors[0]  # rank 0 failed on item 4 as well
    assert not (tmp_path / "out" / "scan" / "manifest.json").exists()


def test_an_error_of_rank_0s_planning_fails_every_rank(tmp_path: Path) -> None:
    config = write_config(tmp_path, SMALL_SCAN)  # no scores at all
    proc = run_mpi(2, "-m", "vbsad_batch", "scan", str(config))
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vbsad: error:")]
    assert len(errors) == 1, proc.stderr
    assert "no scored model; run `vbsad score` first" in errors[0]


# --- one process ---------------------------------------------------------------------------------


def test_single_process_fallback_without_a_launcher() -> None:
    comm = world()  # pytest is not started by mpiexec
    assert isinstance(comm, SingleProcess)
    assert (comm.rank, comm.size) == (0, 1)
    assert map_work([3, 1, 2], lambda x: x * 10) == [30, 10, 20]
    assert map_work([], lambda x: x) == []
    assert run_on_root(lambda: {"a": 1}) == {"a": 1}


def test_single_process_failures() -> None:
    def fail_on_two(x: int) -> int:
        if x == 2:
            raise KeyError("two")
        return x

    with pytest.raises(
        RankFailure, match=r"rank 0 failed on work item 1 2: KeyError: 'two'"
    ) as info:
        map_work([1, 2, 3], fail_on_two, comm=SingleProcess())
    assert (info.value.rank, info.value.item_index, info.value.failures) == (0, 1, 1)
    assert "fail_on_two" in info.value.remote_traceback

    with pytest.raises(RankFailure, match="cannot send the results to rank 0"):
        map_work([1], lambda x: lambda: x)  # a result that cannot be pickled

    def planning() -> int:
        raise FileNotFoundError("no scores")

    with pytest.raises(FileNotFoundError, match="no scores"):  # rank 0 sees its own error
        run_on_root(planning)
    assert pickle.loads(pickle.dumps(SingleProcess())).size == 1


def test_abort_ends_a_rank_waiting_in_a_collective(tmp_path: Path) -> None:
    """An error only one rank sees (outside `map_work` / `run_on_root`): `abort` ends both."""
    script = tmp_path / "abort.py"
    script.write_text(
        textwrap.dedent(
            """
            from vbsad_batch.runtime.mpi import abort, world

            comm = world()
            assert comm.size == 2
            if comm.rank == 1:
                abort(comm, 7)
            comm.gather("rank 0 waits here forever unless the abort ends it", root=0)
            """
        )
    )
    proc = run_mpi(2, str(script))
    assert proc.returncode != 0


def test_a_launcher_mpi4py_cannot_see_is_an_error(synthetic_config: Path) -> None:
    """A launcher's environment (PMI_SIZE=2) but a world of one rank (here: no launcher at all,
    as with an mpi4py built for another MPI): an error, not N ranks each redoing the run."""
    env = {**os.environ, "PMI_SIZE": "2"}
    proc = run_vbsad("scan", synthetic_config, env=env, timeout=TIMEOUT_S)
    assert proc.returncode == 1
    assert "the MPI launcher started 2 ranks but MPI sees a world of 1" in proc.stderr
    assert not (synthetic_config.parent / "out" / "scan").exists()
