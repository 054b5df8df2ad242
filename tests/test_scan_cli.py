"""`vbsad scan` end to end: score files (synthetic ones shaped exactly like `vbsad score` writes
them, and real ones from the SSWW samples through datasets -> train -> score) -> the tables
(JSON, CSV, Markdown in the paper's layout), the curves and the manifest; re-runs, model
selection, and errors that name the file."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import real_example_text

from vbsad_batch.cli import main
from vbsad_batch.config import ScanConfig, load_config
from vbsad_batch.scan.driver import run_scan
from vbsad_batch.scan.tables import (
    CONTOUR_COLUMNS,
    CONTOUR_GRID_COLUMNS,
    CURVE_COLUMNS,
    OUTPUT_NAMES,
    SIGMA_CURVE_COLUMNS,
    TABLE_FIELDS,
)
from vbsad_batch.scan.work import CONTOUR_ANGLES, CONTOUR_GRID_POINTS, SIGMA_CURVE_POINTS

OPERATORS = ("cW", "cHW")
SCORES_SCHEMA = pa.schema(
    [
        ("event", pa.int64()),
        ("input_sha256", pa.large_string()),
        ("yield", pa.float64()),
        ("mse", pa.float32()),
        ("kld", pa.float32()),
    ]
)


# --- synthetic scores, shaped like vbsad_batch.models.scoring writes them ----------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _scores_table(
    rng: np.random.Generator, n: int, scale: float, unit_yield: float, *, kind: str, sha: str
) -> pa.Table:
    mse = rng.exponential(scale, n).astype(np.float32)
    kld = rng.exponential(scale * 0.5, n).astype(np.float32)
    yields = np.full(n, unit_yield)
    if unit_yield < 0:  # a LIN sample with a few positive weights among negative ones
        yields[::7] = -unit_yield
    columns: dict[str, Any] = {
        "event": np.arange(n, dtype=np.int64),
        "input_sha256": pa.array([sha] * n, type=pa.large_string()),
        "yield": yields,
        "mse": mse,
        "kld": kld,
    }
    schema = SCORES_SCHEMA
    if kind == "vae_nn":
        columns["score"] = (1.0 - np.exp(-mse / (2 * scale))).astype(np.float32)
        schema = schema.append(pa.field("score", pa.float32()))
    return pa.table(columns, schema=schema)


def write_synthetic_scores(
    output_dir: Path,
    *,
    models: Sequence[tuple[str, str]] = (("vae_latent3", "vae"), ("vae_nn_latent3_cW", "vae_nn")),
    operators: Sequence[str] = OPERATORS,
    n_sm: int = 3000,
    seed: int = 5,
    nan_in: str | None = None,
    mix: Sequence[tuple[str, str]] = (),
) -> None:
    """<output_dir>/scores/<model>/{sm_test,lin_test_<op>,quad_test_<op>}.parquet + manifest.

    SM: exponential scores of scale 1, 0.4 events each (1200 events in total); LIN: scale 2,
    negative yields with every 7th positive; QUAD: scale 4. `nan_in`: a dataset name whose
    first score becomes NaN (recorded in the manifest like any file). `mix`: operator pairs
    with a MIX sample `mix_test_<a>_<b>` (names sorted; scale 3, 0.06 events each).
    """
    rng = np.random.default_rng(seed)
    for model, kind in models:
        directory = output_dir / "scores" / model
        directory.mkdir(parents=True, exist_ok=True)
        specs = []
        for split in ("test", "validation"):  # validation: other events of the same shapes
            specs.append((f"sm_{split}", n_sm, 1.0, 0.4, _sha(f"sm {split}")))
            for i, op in enumerate(operators):
                lin, quad = f"lin_{split}_{op}", f"quad_{split}_{op}"
                specs.append((lin, n_sm // 2, 2.0 + i, -0.08, _sha(lin)))
                specs.append((quad, n_sm // 2, 4.0 + i, 0.1, _sha(quad)))
        for pair in mix:
            name = "mix_test_" + "_".join(sorted(pair))
            specs.append((name, n_sm // 2, 3.0, 0.06, _sha(name)))
        outputs = []
        for name, n, scale, unit_yield, sha in specs:
            table = _scores_table(rng, n, scale, unit_yield, kind=kind, sha=sha)
            if name == nan_in:
                column = "score" if kind == "vae_nn" else "mse"
                values = table.column(column).to_numpy().copy()
                values[0] = np.nan
                index = table.schema.get_field_index(column)
                table = table.set_column(index, column, pa.array(values, pa.float32()))
            path = directory / f"{name}.parquet"
            pq.write_table(table, path, compression="zstd")
            outputs.append(
                {
                    "name": name,
                    "path": path.name,
                    "rows": n,
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    "size_bytes": path.stat().st_size,
                }
            )
        manifest = {"kind": "vbsad_batch.scores", "model_kind": kind, "outputs": outputs}
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def write_config(tmp_path: Path, scan: str = "", operators: Sequence[str] = OPERATORS) -> Path:
    """An analysis config with empty stand-in sample files (the scan reads only the scores)."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    lines = [
        f"operators = {json.dumps(list(operators))}",
        'output_dir = "out"',
        "[[samples]]",
        'component = "sm"',
        'files = "data/sm.lhe"',
    ]
    (data / "sm.lhe").write_bytes(b"")
    for op in operators:
        for component in ("lin", "quad"):
            (data / f"{component}_{op}.lhe").write_bytes(b"")
            lines += [
                "[[samples]]",
                f'component = "{component}"',
                f'operator = "{op}"',
                f'files = "data/{component}_{op}.lhe"',
            ]
    path = tmp_path / "ana.toml"
    path.write_text("\n".join(lines) + "\n" + scan, encoding="utf-8")
    return path


SMALL_SCAN = (
    "[scan]\nbootstrap_replicas = 6\nbootstrap_chunk = 4\ncurve_points = 300\n"
    'region_from = "test"\n'  # the brute-force checks below scan the test events
)


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    config = write_config(tmp_path, SMALL_SCAN)
    write_synthetic_scores(tmp_path / "out")
    return config


# --- the tables --------------------------------------------------------------------------------


def _region_sums(directory: Path, column: str, op: str, threshold: float) -> tuple[float, ...]:
    """S, L, Q (events) and SM MC events above `threshold`, summed by hand from the files."""
    sums = []
    for name in ("sm_test", f"lin_test_{op}", f"quad_test_{op}"):
        table = pq.read_table(directory / f"{name}.parquet")
        score = table.column(column).to_numpy().astype(np.float64)
        yields = table.column("yield").to_numpy()
        sums.append(float(yields[score >= threshold].sum()))
        if name == "sm_test":
            n_mc = int(np.count_nonzero(score >= threshold))
            total = float(yields.sum())
    return (*sums, n_mc, sums[0] / total)


def test_scan_writes_the_paper_table(synthetic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(synthetic)]) == 0
    out = capsys.readouterr().out
    scan_dir = synthetic.parent / "out" / "scan"
    assert f"written: {scan_dir}" in out
    assert "on 1 rank(s)" in out
    names = sorted(p.name for p in scan_dir.iterdir())
    assert names == sorted((*OUTPUT_NAMES, "manifest.json"))

    document = json.loads((scan_dir / "table.json").read_text())
    assert document["operators"] == list(OPERATORS)  # declared order
    rows = [(r["model"], r["kind"], r["score"]) for r in document["rows"]]
    assert rows == [("vae_latent3", "vae", "mse"), ("vae_nn_latent3_cW", "vae_nn", "score")]
    assert document["significance"] == 3.0
    assert document["bootstrap"] == {"replicas": 6, "seed": 0}

    # Every reported limit: the region's S, L, Q summed by hand give sigma = 3 at c.
    n_checked = 0
    for row in document["rows"]:
        scores_dir = synthetic.parent / "out" / "scores" / row["model"]
        for op in OPERATORS:
            proxy = row["operators"][op]["proxy"]
            for side in ("minus", "plus"):
                c, region = proxy[f"c_{side}"], proxy[side]
                if c is None:
                    assert region["threshold"] is None
                    continue
                s, lin, quad, n_mc, eff = _region_sums(
                    scores_dir, row["score"], op, region["threshold"]
                )
                assert region["sm_yield"] == pytest.approx(s, rel=1e-9)
                assert region["lin_yield"] == pytest.approx(lin, rel=1e-9, abs=1e-9)
                assert region["quad_yield"] == pytest.approx(quad, rel=1e-9)
                assert region["sm_mc_events"] == n_mc >= 10
                assert region["sm_efficiency"] == pytest.approx(eff, rel=1e-9)
                assert abs(c * lin + c * c * quad) / math.sqrt(s) == pytest.approx(3.0, rel=1e-9)
                assert (c < 0) == (side == "minus")
                n_checked += 1
            # 6 replicas: an uncertainty where the limit is reached in >= 2 of them
            assert 0.0 <= (proxy["bootstrap_reached_plus"] or 0.0) <= 1.0
            low, high = row["operators"][op]["interval_95cl"].values()
            assert low is None or low < 0
            assert high is None or high > 0
    assert n_checked >= 6

    # CSV: one row per model, operator-prefixed columns, the same numbers as the JSON.
    with (scan_dir / "table.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["model"] for r in table] == ["vae_latent3", "vae_nn_latent3_cW"]
    assert list(table[0])[:3] == ["model", "kind", "score"]
    assert len(table[0]) == 3 + len(OPERATORS) * len(TABLE_FIELDS)
    for csv_row, json_row in zip(table, document["rows"], strict=True):
        for op in OPERATORS:
            c_plus = json_row["operators"][op]["proxy"]["c_plus"]
            cell = csv_row[f"{op}.proxy.c_plus"]
            assert (cell == "") if c_plus is None else (float(cell) == c_plus)

    # Markdown: operators as columns, models as rows.
    markdown = (scan_dir / "table.md").read_text()
    assert "| model | cW | cHW |" in markdown
    # proxy, regions chosen the other way, Asimov, interval, regions
    assert markdown.count("| `vae_latent3` (mse) |") == 5
    assert markdown.count("| `vae_nn_latent3_cW` (score) |") == 5
    assert "sigma = |c L + c^2 Q| / sqrt(S) = 3" in markdown
    assert "Asimov significance Z = 3" in markdown

    # Curves: every model x score x operator, thresholds ascending, the limits' regions present.
    curves = pq.read_table(scan_dir / "curves.parquet")
    assert tuple(curves.column_names) == CURVE_COLUMNS
    for row in document["rows"]:
        for op in OPERATORS:
            mask = [
                m == row["model"] and s == row["score"] and o == op
                for m, s, o in zip(
                    curves.column("model").to_pylist(),
                    curves.column("score").to_pylist(),
                    curves.column("operator").to_pylist(),
                    strict=True,
                )
            ]
            part = curves.filter(pa.array(mask))
            assert 300 <= part.num_rows <= 304  # thinned to curve_points + the limits' rows
            thresholds = part.column("threshold").to_numpy()
            assert np.all(np.diff(thresholds) > 0)
            proxy = row["operators"][op]["proxy"]
            for side in ("minus", "plus"):
                if proxy[side]["threshold"] is not None:
                    assert proxy[side]["threshold"] in thresholds

    manifest = json.loads((scan_dir / "manifest.json").read_text())
    assert manifest["kind"] == "vbsad_batch.scan"
    assert {o["path"] for o in manifest["outputs"]} == set(names) - {"manifest.json"}
    inputs = {i["model"]: i for i in manifest["key"]["inputs"]}
    sm_file = synthetic.parent / "out" / "scores" / "vae_latent3" / "sm_test.parquet"
    assert inputs["vae_latent3"]["files"][0] == {
        "name": "sm_test",
        "path": "sm_test.parquet",
        "sha256": hashlib.sha256(sm_file.read_bytes()).hexdigest(),
    }
    assert manifest["key"]["settings"]["bootstrap_replicas"] == 6
    assert "created_utc" not in json.dumps(manifest)  # nothing that changes between runs


def test_sigma_curves_and_contours(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, SMALL_SCAN))
    write_synthetic_scores(tmp_path / "out", mix=[("cW", "cHW")])
    result = run_scan(config)
    assert result is not None
    assert result.items == 2 * (2 * 3 + 1)  # rows x (operators x 3 + one contour)
    scan_dir = result.directory
    rows = {(r["model"], r["score"]): r["operators"] for r in result.table["rows"]}

    # sigma(c): per reached limit, the statistic at that limit's threshold, on a symmetric grid
    curves = pq.read_table(scan_dir / "sigma_curves.parquet")
    assert tuple(curves.column_names) == SIGMA_CURVE_COLUMNS
    records = curves.to_pylist()
    n_curves = 0
    for (model, column), per_op in rows.items():
        for op in OPERATORS:
            mine = [
                r for r in records if (r["model"], r["score"], r["operator"]) == (model, column, op)
            ]
            limits = [
                (stat, side, per_op[op][stat][f"c_{side}"], per_op[op][stat][side])
                for stat in ("proxy", "asimov")
                for side in ("minus", "plus")
                if per_op[op][stat][f"c_{side}"] is not None
            ]
            assert len(mine) == SIGMA_CURVE_POINTS * len(limits)
            extent = 1.5 * max(abs(c) for _, _, c, _ in limits)
            for k, (stat, side, c_limit, region) in enumerate(limits):
                part = mine[k * SIGMA_CURVE_POINTS : (k + 1) * SIGMA_CURVE_POINTS]
                assert {(r["statistic"], r["side"], r["threshold"]) for r in part} == {
                    (stat, side, region["threshold"])
                }
                c = np.array([r["c"] for r in part])
                sigma = np.array([r["sigma"] for r in part])
                assert c[0] == pytest.approx(-extent)
                assert c[-1] == pytest.approx(extent)
                assert c[SIGMA_CURVE_POINTS // 2] == 0.0
                assert sigma[SIGMA_CURVE_POINTS // 2] == 0.0
                np.testing.assert_allclose(c, -c[::-1], rtol=1e-12, atol=1e-15)
                s, lin, quad = region["sm_yield"], region["lin_yield"], region["quad_yield"]
                if stat == "proxy":
                    expected = np.abs(c * lin + c * c * quad) / math.sqrt(s)
                    np.testing.assert_allclose(sigma, expected, rtol=1e-12)
                # the curve crosses 3 at the limit: interpolate between the grid points around it
                j = int(np.searchsorted(c, c_limit))
                assert min(sigma[j - 1], sigma[j]) <= 3.0 <= max(sigma[j - 1], sigma[j])
                n_curves += 1
    assert n_curves >= 8

    # contours: one per model x score for the pair with a MIX sample, every point at sigma = 3
    contours = pq.read_table(scan_dir / "contours.parquet")
    assert tuple(contours.column_names) == CONTOUR_COLUMNS
    grid = pq.read_table(scan_dir / "contour_grid.parquet")
    assert tuple(grid.column_names) == CONTOUR_GRID_COLUMNS
    points = contours.to_pylist()
    for (model, column), per_op in rows.items():
        mine = [p for p in points if (p["model"], p["score"]) == (model, column)]
        assert len(mine) == CONTOUR_ANGLES
        region = mine[0]
        assert (region["operator_a"], region["operator_b"]) == ("cW", "cHW")
        # the region's yields, summed by hand from the score files (mix file included)
        scores_dir = tmp_path / "out" / "scores" / model
        t = region["threshold"]
        sums = {}
        for name, key in (
            ("sm_test", "sm_yield"),
            ("lin_test_cW", "lin_a"),
            ("quad_test_cW", "quad_a"),
            ("lin_test_cHW", "lin_b"),
            ("quad_test_cHW", "quad_b"),
            ("mix_test_cHW_cW", "mix_yield"),
        ):
            table = pq.read_table(scores_dir / f"{name}.parquet")
            score = table.column(column).to_numpy().astype(np.float64)
            sums[key] = float(table.column("yield").to_numpy()[score >= t].sum())
            assert region[key] == pytest.approx(sums[key], rel=1e-9, abs=1e-9)
        assert region["sm_mc_events"] >= 10
        c_a = np.array([p["c_a"] for p in mine], dtype=float)
        c_b = np.array([p["c_b"] for p in mine], dtype=float)
        ok = np.isfinite(c_a)
        assert ok.sum() >= CONTOUR_ANGLES // 2
        signal = (
            c_a * sums["lin_a"]
            + c_b * sums["lin_b"]
            + c_a**2 * sums["quad_a"]
            + c_b**2 * sums["quad_b"]
            + c_a * c_b * sums["mix_yield"]
        )
        np.testing.assert_allclose(np.abs(signal[ok]) / math.sqrt(sums["sm_yield"]), 3.0, rtol=1e-8)
        # the region is no worse for either operator's 1D limits than needed: its axis points
        # are at least the table's limits in |c|
        for k, (op, values) in enumerate((("cW", c_a), ("cHW", c_b))):
            on_axis = (
                values[[0, CONTOUR_ANGLES // 2]]
                if k == 0
                else values[[CONTOUR_ANGLES // 4, 3 * CONTOUR_ANGLES // 4]]
            )
            proxy = per_op[op]["proxy"]
            for value in on_axis[np.isfinite(on_axis)]:
                best = proxy["c_plus"] if value > 0 else proxy["c_minus"]
                assert abs(value) >= abs(best) * (1 - 1e-12)
        # the grid: the same sigma, CONTOUR_GRID_POINTS^2 values
        cells = [g for g in grid.to_pylist() if (g["model"], g["score"]) == (model, column)]
        assert len(cells) == CONTOUR_GRID_POINTS**2
        ga = np.array([g["c_a"] for g in cells])
        gb = np.array([g["c_b"] for g in cells])
        expected = np.abs(
            ga * sums["lin_a"]
            + gb * sums["lin_b"]
            + ga**2 * sums["quad_a"]
            + gb**2 * sums["quad_b"]
            + ga * gb * sums["mix_yield"]
        ) / math.sqrt(sums["sm_yield"])
        np.testing.assert_allclose([g["sigma"] for g in cells], expected, rtol=1e-8)
        assert ga.max() == pytest.approx(1.5 * np.max(np.abs(c_a[ok])))

    manifest = json.loads((scan_dir / "manifest.json").read_text())
    files = {f["name"] for i in manifest["key"]["inputs"] for f in i["files"]}
    assert "mix_test_cHW_cW" in files


def test_rerun_is_up_to_date_and_outputs_do_not_depend_on_the_chunking(
    synthetic: Path, tmp_path: Path
) -> None:
    config = load_config(synthetic)
    first = run_scan(config)
    assert first is not None
    assert first.status == "written"
    assert first.items == 2 * 2 * (1 + 2)  # rows x operators x (point + 2 bootstrap chunks)
    scan_dir = first.directory
    before = {p.name: p.read_bytes() for p in scan_dir.iterdir()}
    again = run_scan(config)
    assert again is not None
    assert (again.status, again.items) == ("skipped", 0)
    assert again.table == first.table

    # Other chunks of the same replicas: recomputed (settings changed), the same bytes.
    rechunked = load_config(
        write_config(tmp_path, SMALL_SCAN.replace("bootstrap_chunk = 4", "bootstrap_chunk = 1"))
    )
    assert rechunked.scan.bootstrap_chunk == 1
    result = run_scan(rechunked, force=True)
    assert result is not None
    assert result.items == 2 * 2 * (1 + 6)
    after = {p.name: p.read_bytes() for p in scan_dir.iterdir()}
    assert after == before


def test_models_option_and_score_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path,
        "[scan]\nbootstrap_replicas = 0\nvae_scores = ['mse', 'kld']\nvae_nn_scores = 'mse'\n",
    )
    write_synthetic_scores(tmp_path / "out")
    assert main(["--quiet", "scan", str(config), "--models", "vae_latent3"]) == 0
    assert capsys.readouterr().out == ""
    document = json.loads((tmp_path / "out" / "scan" / "table.json").read_text())
    assert [(r["model"], r["score"]) for r in document["rows"]] == [
        ("vae_latent3", "mse"),
        ("vae_latent3", "kld"),
    ]
    proxy = document["rows"][0]["operators"]["cW"]["proxy"]
    assert proxy["c_plus_error"] is None  # no replicas, no uncertainty
    assert proxy["bootstrap_reached_plus"] is None

    assert main(["scan", str(config), "--models", "vae_latent7"]) == 1
    err = capsys.readouterr().err
    assert "no scores of model(s) vae_latent7" in err
    assert "vae_latent3, vae_nn_latent3_cW" in err


def test_errors_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, SMALL_SCAN)
    assert main(["scan", str(config)]) == 1
    assert "no scored model; run `vbsad score` first" in capsys.readouterr().err

    write_synthetic_scores(tmp_path / "out", nan_in="quad_test_cHW")
    assert main(["scan", str(config), "--models", "vae_latent3"]) == 1
    err = capsys.readouterr().err
    assert "rank 0 failed on work item" in err
    assert "quad_test_cHW.parquet: 1 non-finite value(s) in column 'mse'" in err
    assert not (tmp_path / "out" / "scan" / "manifest.json").exists()

    sm_file = tmp_path / "out" / "scores" / "vae_latent3" / "sm_test.parquet"
    sm_file.write_bytes(sm_file.read_bytes() + b"\0")
    assert main(["scan", str(config)]) == 1
    assert f"{sm_file}: SHA-256 differs from the scores manifest" in capsys.readouterr().err

    (tmp_path / "out" / "scores" / "vae_latent3" / "lin_test_cW.parquet").unlink()
    manifest_path = tmp_path / "out" / "scores" / "vae_latent3" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["outputs"] = [o for o in manifest["outputs"] if o["name"] != "lin_test_cW"]
    manifest_path.write_text(json.dumps(manifest))
    assert main(["scan", str(config)]) == 1
    assert "no scores of lin_test_cW (operator cW)" in capsys.readouterr().err


def test_scan_config_errors_name_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "[scan]\nvae_scores = ['score']\n")
    assert main(["scan", str(config)]) == 1
    assert "scan.vae_scores[0]: 'score' is not a score column of a 'vae' model" in (
        capsys.readouterr().err
    )
    assert ScanConfig().score_columns("vae_nn") == ("score",)


def test_scan_does_not_load_tensorflow(synthetic: Path) -> None:
    code = (
        "import sys; from vbsad_batch.cli import main; rc = main(['-q', 'scan', sys.argv[1]]); "
        "assert 'tensorflow' not in sys.modules and 'mpi4py' not in sys.modules; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(synthetic)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


# --- the real pipeline: SSWW samples -> datasets -> train -> score -> scan ----------------------


@pytest.mark.slow
def test_real_pipeline_to_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = real_example_text(without=("training",))
    text = text.replace('training_operator = "cW"', 'training_operator = "cW"\noutput_dir = "out"')
    text += "\n[training]\nepochs = 3\nbatch_size = 512\n"
    text += "\n[scan]\nbootstrap_replicas = 4\nmin_sm_mc_events = 5\nmin_sm_yield = 0.1\n"
    config = tmp_path / "ssww.toml"
    config.write_text(text, encoding="utf-8")
    for args in (
        ["datasets", config],
        ["train", config, "--model", "vae"],
        ["score", config, "--model", "vae"],
        ["train", config, "--model", "vae_nn"],
        ["score", config, "--model", "vae_nn"],
    ):
        assert main(["--quiet", *map(str, args)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["scan", str(config)]) == 0
    print(capsys.readouterr().out)  # the table, for the log of a verbose run
    scan_dir = tmp_path / "out" / "scan"
    document = json.loads((scan_dir / "table.json").read_text())
    assert document["operators"] == ["cW"]
    rows = [(r["model"], r["score"]) for r in document["rows"]]
    assert rows == [("vae_latent3", "mse"), ("vae_nn_latent3_cW", "score")]
    n_reached = 0
    for row in document["rows"]:
        entry = row["operators"]["cW"]
        for side in ("minus", "plus"):
            c = entry["proxy"][f"c_{side}"]
            if c is not None:
                region = entry["proxy"][side]
                sigma = abs(c * region["lin_yield"] + c * c * region["quad_yield"])
                assert sigma / math.sqrt(region["sm_yield"]) == pytest.approx(3.0, rel=1e-9)
                n_reached += 1
    assert n_reached >= 2  # cW is visible at 350 fb^-1 (the paper: |c| ~ 0.1 - 0.3)
    markdown = (scan_dir / "table.md").read_text()
    assert "| model | cW |" in markdown
    assert "| `vae_latent3` (mse) |" in markdown
    assert "| `vae_nn_latent3_cW` (score) |" in markdown


def test_scan_help_states_units_and_outputs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("events", "Lambda = 1 TeV", "table.md", "curves.parquet", "mpiexec -n", "[scan]"):
        assert words in text
