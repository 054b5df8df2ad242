"""The SM sort of a score column split between MPI ranks (`vbsad_batch.scan.sm_sharing`): the
value ranges make up numpy's stable argsort exactly, and under a REAL `mpiexec -n 2` / `-n 3`
the shared `SMColumn` and its operator scans equal one rank's bit for bit; which columns the
schedule shares (`vbsad_batch.scan.schedule.shared_sorts`); and `vbsad scan` on 1 and 2 ranks
sharing a column writes the same bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import run_vbsad
from test_scan_cli import SMALL_SCAN, write_config, write_synthetic_scores
from test_scan_mpi import TIMEOUT_S, run_mpi

from vbsad_batch.config import load_config
from vbsad_batch.runtime.mpi import SingleProcess
from vbsad_batch.scan.baseline import CUT_MODEL
from vbsad_batch.scan.schedule import blocks, shared_sorts
from vbsad_batch.scan.scores import discover_models
from vbsad_batch.scan.sm_column import SMColumn
from vbsad_batch.scan.sm_sharing import range_order, shared_sm_column, value_bounds
from vbsad_batch.scan.statistics import ScoreSample
from vbsad_batch.scan.work import WorkItem


def tied_scores(n: int, seed: int) -> np.ndarray:
    """Scores with many ties (few distinct values), both zeros' signs and large magnitudes."""
    rng = np.random.default_rng(seed)
    score = np.round(rng.normal(0.0, 2.0, n), 1)
    score[rng.integers(0, n, n // 10)] = -0.0
    score[rng.integers(0, n, n // 20)] = 1e300
    return score


@pytest.mark.parametrize(
    "shares",
    [[1.0], [1.0, 1.0], [1.0, 2.0, 3.0], [0.0, 1.0, 0.0], [1.0] * 64, [5.0, 1e-9]],
)
def test_value_ranges_concatenate_to_the_stable_argsort(shares: list[float]) -> None:
    score = tied_scores(20_000, seed=len(shares))
    bounds = value_bounds(score, shares)
    assert bounds.size == len(shares) - 1
    parts = [range_order(score, k, bounds) for k in range(len(shares))]
    # independent reference: sort by (score, event index), -0.0 equal to 0.0
    reference = np.lexsort((np.arange(score.size), score + 0.0))
    np.testing.assert_array_equal(np.concatenate(parts), reference)
    np.testing.assert_array_equal(np.concatenate(parts), np.argsort(score, kind="stable"))
    # without ties the ranges hold the shares of the events, to the subsample's precision
    untied = np.random.default_rng(3).normal(0.0, 1.0, 200_000)
    bounds = value_bounds(untied, shares)
    sizes = np.array([range_order(untied, k, bounds).size for k in range(len(shares))])
    np.testing.assert_allclose(sizes / untied.size, np.array(shares) / sum(shares), atol=0.01)


def test_value_bounds_errors_and_one_rank() -> None:
    score = tied_scores(100, seed=1)
    with pytest.raises(ValueError, match="shares must be"):
        value_bounds(score, [0.0, 0.0])
    with pytest.raises(ValueError, match="shares must be"):
        value_bounds(score, [1.0, -1.0])
    sm = ScoreSample(score, np.ones(score.size))
    with pytest.raises(ValueError, match="2 share"):
        shared_sm_column(sm, SingleProcess(), [1.0, 1.0])
    column = shared_sm_column(sm, SingleProcess())
    lin = ScoreSample(score, np.arange(score.size, dtype=np.float64))
    fresh = SMColumn(sm).scan(lin, lin).scan
    np.testing.assert_array_equal(column.scan(lin, lin).scan.sm_yield, fresh.sm_yield)


_SHARED_SCRIPT = """
import json, sys
import numpy as np
from vbsad_batch.runtime.mpi import world
from vbsad_batch.scan.sm_column import SMColumn
from vbsad_batch.scan.sm_sharing import SharedSort, build_shared_columns
from vbsad_batch.scan.statistics import ScoreSample

comm = world()
rng = np.random.default_rng(11)
n = 30_000
score = np.round(rng.exponential(1.0, n), 2)  # ties
sm = ScoreSample(score, rng.exponential(0.3, n))
lin = ScoreSample(score, rng.normal(0.0, 0.1, n))
quad = ScoreSample(rng.exponential(1.5, n), rng.exponential(0.2, n))  # other events
everyone = tuple(range(comm.size))
groups = [SharedSort("all", everyone), SharedSort("first two", (0, 1))]
built = build_shared_columns(groups, comm, lambda key: sm)
alone = SMColumn(sm)
same = {}
for key, column in built.items():
    for name in ("_order", "_threshold", "_starts", "_suffix"):
        same[f"{key} {name}"] = bool(np.array_equal(getattr(column, name), getattr(alone, name)))
    for a, b in ((lin, lin), (lin, quad)):
        shared, single = column.scan(a, b).scan, alone.scan(a, b).scan
        for field in ("threshold", "sm_yield", "lin_yield", "quad_yield", "sm_mc_events"):
            ok = np.array_equal(getattr(shared, field), getattr(single, field))
            same[f"{key} {field} {b is quad}"] = bool(ok)
record = {"rank": comm.rank, "size": comm.size, "built": sorted(built), "same": same}
gathered = comm.gather(record, root=0)
if comm.rank == 0:
    print(json.dumps(gathered), flush=True)
"""


@pytest.mark.parametrize("ranks", [2, 3])
def test_shared_sm_column_equals_one_ranks_bit_for_bit(tmp_path: Path, ranks: int) -> None:
    script = tmp_path / "shared.py"
    script.write_text(textwrap.dedent(_SHARED_SCRIPT))
    proc = run_mpi(ranks, str(script))
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["size"] for r in records] == [ranks] * ranks
    for r in records:  # rank 2 is not in the group of the first two
        expected = ["all", "first two"] if r["rank"] < 2 else ["all"]
        assert r["built"] == expected
        assert len(r["same"]) == 14 * len(expected)
        assert all(r["same"].values()), r["same"]


# --- which columns are shared -------------------------------------------------------------------


def test_shared_sorts_lists_the_columns_of_points_on_several_ranks() -> None:
    items = [WorkItem(CUT_MODEL, "", "cW")]
    for column in ("mse", "kld"):
        for op in ("cW", "cHW", "cHq1"):
            items += [WorkItem("m", column, op), WorkItem("m", column, op, (0, 6))]

    def needs(item: WorkItem) -> list[tuple[str, str]]:
        point = item.model != CUT_MODEL and item.replicas is None
        return [(item.model, item.score)] if point else []

    assert shared_sorts(items, 1, needs) == []
    shared_somewhere = False
    for size in (2, 3, 5, 13):
        parts = blocks(items, size)
        found = {s.key: s.ranks for s in shared_sorts(items, size, needs)}
        for key in (("m", "mse"), ("m", "kld")):
            users = sorted(
                {r for r, part in enumerate(parts) for i in part if needs(items[i]) == [key]}
            )
            assert found.get(key, tuple(users)) == tuple(users)
            assert (key in found) == (len(users) > 1)
            shared_somewhere |= key in found
    assert shared_somewhere


# --- vbsad scan -----------------------------------------------------------------------------------


def test_one_and_two_ranks_sharing_the_sm_sort_write_identical_outputs(tmp_path: Path) -> None:
    operators = ("cW", "cHW", "cHq1", "cqq1")
    # regions chosen on the validation events: the test and validation SM columns both shared
    config = write_config(
        tmp_path, SMALL_SCAN.replace('region_from = "test"', ""), operators=operators
    )
    write_synthetic_scores(
        tmp_path / "out", models=(("vae_latent3", "vae"),), operators=operators, n_sm=20_000
    )
    scan_dir = tmp_path / "out" / "scan"
    single = run_vbsad("scan", config, timeout=TIMEOUT_S)
    assert single.returncode == 0, single.stderr
    one = {p.name: p.read_bytes() for p in sorted(scan_dir.iterdir())}
    shutil.rmtree(scan_dir)

    # the precondition: both ranks scan operators of the same SM columns
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                from vbsad_batch.config import load_config
                from vbsad_batch.scan.driver import _plan
                from vbsad_batch.scan.schedule import shared_sorts
                from vbsad_batch.scan.scores import operator_order
                from vbsad_batch.scan.work import Worker, table_rows, work_items
                config = load_config(sys.argv[1])
                plan = _plan(config, None, False)
                rows = table_rows(plan.models, config.scan)
                items = work_items(rows, operator_order(config), config.scan, {}, cuts=False)
                worker = Worker({m.name: m for m in plan.models}, config.scan, None, print, 0)
                for group in shared_sorts(items, 2, worker.sm_columns_of):
                    print(group.key[1], group.ranks)
                """
            ),
            str(config),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.split("\n")[:2] == ["sm_test (0, 1)", "sm_validation (0, 1)"]
    assert load_config(config).scan.region_from == "validation"

    double = run_mpi(2, "-m", "vbsad_batch", "scan", str(config))
    assert double.returncode == 0, double.stderr
    assert "on 2 rank(s)" in double.stdout
    two = {p.name: p.read_bytes() for p in sorted(scan_dir.iterdir())}
    assert sorted(two) == sorted(one)
    for name, content in one.items():
        assert two[name] == content, f"{name} differs between 1 and 2 ranks"


def test_a_column_built_ahead_is_kept_until_its_items_have_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker keeps an adopted SM column (and its score file) through other groups' items,
    uses it for its own, and forgets it after them; the limits are those of a fresh worker."""
    from vbsad_batch.scan import work  # noqa: PLC0415 - patched below

    config = load_config(write_config(tmp_path, SMALL_SCAN))
    write_synthetic_scores(tmp_path / "out")
    models = {m.name: m for m in discover_models(config)}
    reads: list[str] = []
    load = work.load_columns

    def counting(path: Path, column: str, **kwargs: object) -> work.ScoreColumns:
        reads.append(f"{path.parent.name}/{path.stem}/{column}")
        return load(path, column, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(work, "load_columns", counting)
    worker = work.Worker(models, config.scan, None, lambda event: None, 0)
    key = ("vae_latent3", "sm_test", "mse")
    worker.adopt({key: SMColumn(worker.sm_sample(key))})
    other = WorkItem("vae_nn_latent3_cW", "score", "cW")
    worker(other)  # another group's item first, as on a rank whose block starts there
    mine = WorkItem("vae_latent3", "mse", "cHW")
    result = worker(mine)
    assert reads.count("vae_latent3/sm_test/mse") == 1  # read once, for the adopted column
    worker(other)  # the group is over: its data are forgotten
    worker(mine)
    assert reads.count("vae_latent3/sm_test/mse") == 2

    fresh = work.Worker(models, config.scan, None, lambda event: None, 0)(mine)
    assert json.dumps(result.proxy) == json.dumps(fresh.proxy)  # type: ignore[union-attr]
    assert json.dumps(result.asimov) == json.dumps(fresh.asimov)  # type: ignore[union-attr]
