"""The scan across MPI ranks, under a REAL `mpiexec -n 2` (the MPICH wheel's launcher next to
the test interpreter): the world size inside, byte-identical outputs for 1 and 2 ranks, and a
failing rank that makes the run fail with that rank's error, on every rank, without a hang.
Plus `map_work` / `run_on_root` in one process (the size-1 fallback)."""

from __future__ import annotations

import json
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
from vbsad_batch.scan.baseline import CUT_MODEL
from vbsad_batch.scan.schedule import (
    blocks,
    dealt_in_blocks,
    estimated_cost,
    in_item_order,
    map_in_blocks,
)
from vbsad_batch.scan.work import WorkItem

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
    # Items: cW point, 2 chunks (0-2: rank 0's block), cHW point, 2 chunks (3-5: rank 1's).
    errors = [line for line in proc.stderr.splitlines() if line.startswith("vbsad: error:")]
    assert len(errors) == 1, proc.stderr  # reported once, by rank 0
    assert "rank 1 failed on work item 3" in errors[0]
    assert "quad_test_cHW.parquet: 1 non-finite value(s) in column 'mse'" in errors[0]
    # rank 0 computes the cW items only: it never reads quad_test_cHW, so it does not fail
    assert "more failure(s)" not in errors[0]
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


def test_each_rank_reads_only_the_score_files_of_its_own_items(tmp_path: Path) -> None:
    """Under 2 real ranks, what each rank opened (recorded around the loader): the operator
    files split between the ranks, none read twice, and a run of 2 ranks writes the table of 1."""
    operators = ("cW", "cHW", "cHq1", "cqq1")
    # regions chosen on the validation events: the test and validation files are both read
    config = write_config(
        tmp_path, SMALL_SCAN.replace('region_from = "test"', ""), operators=operators
    )
    write_synthetic_scores(tmp_path / "out", models=(("vae_latent3", "vae"),), operators=operators)
    script = tmp_path / "opened.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys
            from pathlib import Path
            import vbsad_batch.scan.work as work
            from vbsad_batch.config.loading import load_config
            from vbsad_batch.runtime.mpi import world
            from vbsad_batch.scan.driver import run_scan

            comm = world()
            opened = []
            load = work.load_columns

            def recording(path, column, **kwargs):
                opened.append(Path(path).name)
                return load(path, column, **kwargs)

            work.load_columns = recording
            result = run_scan(load_config(Path(sys.argv[1])), comm=comm)
            everyone = comm.gather({"rank": comm.rank, "size": comm.size, "opened": opened})
            if comm.rank == 0:
                Path(sys.argv[2]).write_text(
                    json.dumps({"ranks": everyone, "table": result.table["rows"]})
                )
            """
        )
    )
    out = tmp_path / "opened.json"
    proc = run_mpi(2, str(script), str(config), str(out))
    assert proc.returncode == 0, proc.stderr
    found = json.loads(out.read_text())
    assert [r["size"] for r in found["ranks"]] == [2, 2]
    assert [r["rank"] for r in found["ranks"]] == [0, 1]
    per_rank = [r["opened"] for r in found["ranks"]]
    for opened in per_rank:
        assert len(opened) == len(set(opened)), opened  # each file once per rank
        assert opened, "a rank without work"
    operator_files = [
        {name for name in opened if not name.startswith("sm_")} for opened in per_rank
    ]
    every = {
        f"{kind}_{split}_{op}.parquet"
        for kind in ("lin", "quad")
        for split in ("test", "validation")
        for op in operators
    }
    assert operator_files[0] | operator_files[1] == every
    assert not operator_files[0] & operator_files[1]  # no operator's data on both ranks
    assert len(operator_files[0]) == len(operator_files[1])  # 2 operators each

    shutil.rmtree(tmp_path / "out" / "scan")
    single = run_vbsad("scan", config, timeout=TIMEOUT_S)
    assert single.returncode == 0, single.stderr
    assert (
        json.loads((tmp_path / "out" / "scan" / "table.json").read_text())["rows"]
        == (found["table"])
    )


# --- which rank computes which item (vbsad_batch.scan.schedule) ---------------------------------


def schedule_items() -> list[WorkItem]:
    """Two score columns x 3 operators: a point and bootstrap chunks of 10 + 4 each; a contour."""
    items = [WorkItem(CUT_MODEL, "", "cW")]
    for column in ("mse", "kld"):
        for op in ("cW", "cHW", "cHq1"):
            items += [WorkItem("m", column, op), WorkItem("m", column, op, (0, 10))]
            items.append(WorkItem("m", column, op, (10, 14)))
        items.append(WorkItem("m", column, "cW", None, "cHW"))
    return items


@pytest.mark.parametrize("size", [1, 2, 3, 5, 40])
def test_blocks_are_contiguous_balanced_and_dealt_round_robin(size: int) -> None:
    items = schedule_items()
    parts = blocks(items, size)
    assert len(parts) == size
    assert [i for part in parts for i in part] == list(range(len(items)))  # contiguous, in order
    costs = [sum(estimated_cost(items[i]) for i in part) for part in parts]
    largest = max(estimated_cost(item) for item in items)
    assert max(costs) <= sum(costs) / size + largest  # off the even share by < one item
    # map_work deals position p to rank p % size: rank r then gets block r, in order
    order = dealt_in_blocks(items, size)
    for rank, part in enumerate(parts):
        assert [i for i in order[rank::size] if i is not None] == list(part)
    assert in_item_order(order, [None if i is None else -i for i in order], len(items)) == [
        -i for i in range(len(items))
    ]


def test_map_in_blocks_returns_item_order_and_names_the_failing_item() -> None:
    items = schedule_items()
    assert map_in_blocks(items, repr, comm=SingleProcess()) == [repr(item) for item in items]

    def fail_on_contour(item: WorkItem) -> int:
        if item.partner is not None:
            raise ValueError("no mix")
        return 1

    with pytest.raises(RankFailure, match=r"failed on work item 10 WorkItem\(.*\): ValueError"):
        map_in_blocks(items, fail_on_contour, comm=SingleProcess())
