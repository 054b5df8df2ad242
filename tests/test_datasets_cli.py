"""Yields and datasets on the REAL SSWW samples, against a computation written in this test.

The reference reads the LHE files with pylhe (`lhe_reference`, which shares no code with
vbsad_batch), takes the cross section from the MadGraph banner with a regex, sums the weights
of all events and applies the VBS selection with numpy. Yields in events at 350 fb^-1.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import uproot
from conftest import SSWW_DIR
from lhe_reference import observables, read_reference

from vbsad_batch.cli import main
from vbsad_batch.config import load_config
from vbsad_batch.weighting.yields import yields_table

LUMI_FB = 350.0
SAMPLES = {  # name -> (component, operator, file)
    "ssww_SM": ("sm", "", "ssww_SM.lhe.gz"),
    "ssww_cW_LIN": ("lin", "cW", "ssww_cW_LIN.lhe.gz"),
    "ssww_cW_QUAD": ("quad", "cW", "ssww_cW_QUAD.lhe.gz"),
}
_BANNER_XSEC = re.compile(rb"Integrated weight \(pb\)\s*:\s*([-+0-9.eE]+)")


def _config_text(files: dict[str, Path], output_dir: Path) -> str:
    lines = [
        'operators = ["cW"]',
        f"luminosity_fb = {LUMI_FB}",
        'training_operator = "cW"',
        f'output_dir = "{output_dir}"',
        "[split]",
        "train = 0.6",
        "validation = 0.2",
        "test = 0.2",
        "seed = 0",
    ]
    for name, (component, op, _) in SAMPLES.items():
        lines += ["[[samples]]", f'name = "{name}"', f'component = "{component}"']
        if op:
            lines.append(f'operator = "{op}"')
        lines.append(f'files = "{files[name]}"')
    return "\n".join(lines) + "\n"


def _reference_yields(path: Path) -> dict[str, float]:
    """Yields before/after the VBS selection, computed without vbsad_batch."""
    with gzip.open(path) as f:
        match = _BANNER_XSEC.search(f.read(200_000))
    assert match is not None
    xsec_pb = float(match.group(1))
    ref = read_reference(path)
    sumw_all = sum(ev.xwgtup for ev in ref.events)
    obs = observables(ref).columns
    w = obs["w"]
    selected = (
        (obs["ptj1"] > 30) & (obs["ptj2"] > 30) & (obs["deltaetajj"] > 2) & (obs["mjj"] > 200)
    )
    scale = xsec_pb * 1000.0 * LUMI_FB / sumw_all
    return {
        "yield_total": scale * float(np.sum(w)),
        "yield_selected": scale * float(np.sum(w[selected])),
        "n_mc": len(w),
        "n_mc_selected": int(selected.sum()),
        "xsec_pb": xsec_pb,
    }


@pytest.fixture(scope="module")
def reference() -> dict[str, dict[str, float]]:
    return {name: _reference_yields(SSWW_DIR / f) for name, (_, _, f) in SAMPLES.items()}


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("real")
    files = {name: SSWW_DIR / f for name, (_, _, f) in SAMPLES.items()}
    path = base / "ssww.toml"
    path.write_text(_config_text(files, base / "out"))
    return path


def _rows(table: pl.DataFrame) -> dict[str, dict[str, object]]:
    return {row["sample"]: row for row in table.to_dicts() if row["sample"]}


def test_yields_on_real_samples_match_independent_computation(
    config_path: Path, reference: dict[str, dict[str, float]]
) -> None:
    table = yields_table(load_config(config_path))
    rows = _rows(table)
    assert set(rows) == set(SAMPLES)
    for name, ref in reference.items():
        row = rows[name]
        assert row["xsec_source"] == "mg_banner"  # not the <init> XSECUP (a factor 2.6 off)
        assert row["n_mc"] == ref["n_mc"]
        assert row["n_mc_selected"] == ref["n_mc_selected"]
        for key in ("yield_total", "yield_selected", "xsec_pb"):
            assert row[key] == pytest.approx(ref[key], rel=1e-9), (name, key)
    # Sanity of the physics numbers: every event is a row, so the total is xsec * L.
    assert rows["ssww_SM"]["yield_total"] == pytest.approx(2.640032e-3 * 350e3, rel=1e-6)


def test_yields_cli_csv_and_json(
    config_path: Path,
    reference: dict[str, dict[str, float]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    csv_path, json_path = tmp_path / "y.csv", tmp_path / "y.json"
    args = ["yields", str(config_path), "--op", "cW=0.3"]
    code = main([*args, "--csv", str(csv_path), "--json", str(json_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "events at 350 fb^-1" in out
    with csv_path.open() as f:
        csv_rows = list(csv.DictReader(f))
    document = json.loads(json_path.read_text())
    assert document["luminosity_fb"] == LUMI_FB
    assert document["unit"] == "events at 350 fb^-1"
    assert document["coefficients"] == {"cW": 0.3}
    assert len(csv_rows) == len(document["rows"]) == 5  # sm, lin, quad, eft cW, bsm
    sm, lin, quad = (reference[n]["yield_selected"] for n in SAMPLES)
    by_component = {r["component"]: r for r in document["rows"]}
    assert by_component["eft"]["yield_selected"] == pytest.approx(0.3 * lin + 0.09 * quad)
    assert by_component["bsm"]["yield_selected"] == pytest.approx(sm + 0.3 * lin + 0.09 * quad)
    csv_sm = next(r for r in csv_rows if r["component"] == "sm")
    assert float(csv_sm["yield_selected"]) == pytest.approx(sm, rel=1e-12)


def test_yields_cli_errors_name_the_problem(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["yields", str(config_path), "--op", "cXX=1"]) == 1
    assert "cXX" in capsys.readouterr().err
    missing = tmp_path / "nope.toml"
    assert main(["yields", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "nope.toml" in err
    assert len(err.strip().splitlines()) == 1


def test_datasets_cli_writes_splits_and_skips_rerun(
    config_path: Path, reference: dict[str, dict[str, float]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-q", "datasets", str(config_path)]) == 0
    directory = config_path.parent / "out" / "datasets"
    manifest = json.loads((directory / "manifest.json").read_text())
    names = {d["name"] for d in manifest["datasets"]}
    assert names == {
        "sm_train",
        "sm_validation",
        "sm_test",
        "mixed_train_cW",
        "mixed_validation_cW",
        "lin_test_cW",
        "quad_test_cW",
        "lin_validation_cW",
        "quad_validation_cW",
    }
    assert {Path(i["path"]).name for i in manifest["inputs"]} == {f for _, _, f in SAMPLES.values()}
    assert all(len(i["sha256"]) == 64 for i in manifest["inputs"])
    assert manifest["provenance"]["tool_version"]

    frames = {name: pl.read_parquet(directory / f"{name}.parquet") for name in names}
    for frame in frames.values():
        for column in ("mjj", "deltaphijj", "w", "yield", "event", "input_sha256"):
            assert column in frame.columns
        assert frame["ptj2"].min() > 30  # selection applied

    # SM splits: disjoint, together exactly the selected SM events; their yields are divided
    # by the split fraction, so fraction-weighted sums give back the selected SM yield.
    keys = [
        set(zip(frames[s]["input_sha256"], frames[s]["event"], strict=True))
        for s in ("sm_train", "sm_validation", "sm_test")
    ]
    assert sum(len(k) for k in keys) == len(set().union(*keys))
    assert len(set().union(*keys)) == reference["ssww_SM"]["n_mc_selected"]
    total = sum(
        f * frames[s]["yield"].sum()
        for s, f in (("sm_train", 0.6), ("sm_validation", 0.2), ("sm_test", 0.2))
    )
    assert total == pytest.approx(reference["ssww_SM"]["yield_selected"], rel=1e-9)

    mixed = frames["mixed_train_cW"]
    assert set(mixed["label"].unique()) == {0, 1}
    assert (mixed.filter(pl.col("label") == 0)["yield"].sum()) == pytest.approx(
        frames["sm_train"]["yield"].sum(), rel=1e-12
    )
    assert mixed.filter(pl.col("component") == "lin")["w"].min() < 0  # negative LIN kept
    assert frames["lin_test_cW"]["w"].min() < 0

    mtimes = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    capsys.readouterr()
    assert main(["datasets", str(config_path)]) == 0
    assert "skipped" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == mtimes

    # A changed option rewrites: EFT yields of the mixed set scale as c LIN and c^2 QUAD.
    assert main(["-q", "datasets", str(config_path), "--training-coefficient", "0.5"]) == 0
    rescaled = pl.read_parquet(directory / "mixed_train_cW.parquet")
    for component, factor in (("sm", 1.0), ("lin", 0.5), ("quad", 0.25)):
        before = mixed.filter(pl.col("component") == component)["yield"]
        after = rescaled.filter(pl.col("component") == component)["yield"]
        np.testing.assert_allclose(after.to_numpy(), factor * before.to_numpy(), rtol=1e-15)


def test_export_root_round_trip(tmp_path: Path, reference: dict[str, dict[str, float]]) -> None:
    """LHE -> Parquet (preprocess) -> ROOT (export-root) -> yields equal the LHE ones up to
    float32 rounding of the stored values (relative 1e-6 here)."""
    shards, ntuples = tmp_path / "shards", tmp_path / "ntuples"
    inputs = [str(SSWW_DIR / f) for _, _, f in SAMPLES.values()]
    assert main(["-q", "preprocess", *inputs, "--output", str(shards)]) == 0
    assert main(["-q", "export-root", str(shards), "--output", str(ntuples)]) == 0

    for name, (_, _, lhe) in SAMPLES.items():
        stem = lhe.removesuffix(".lhe.gz")
        with uproot.open(ntuples / f"ntuple_{stem}.root") as f:
            tree = f[stem]
            assert tree.classname in ("TTree", "TNtuple")
            arrays = tree.arrays(["w", "ptj1", "ptj2", "deltaetajj", "mjj"], library="np")
            nums = f[f"{stem}_nums"].values()
        xsec, sumw = float(nums[0]), float(nums[1])
        sel = (
            (arrays["ptj1"] > 30)
            & (arrays["ptj2"] > 30)
            & (arrays["deltaetajj"] > 2)
            & (arrays["mjj"] > 200)
        )
        w = arrays["w"].astype(np.float64)
        scale = xsec * 1000.0 * LUMI_FB / sumw
        ref = reference[name]
        assert scale * w.sum() == pytest.approx(ref["yield_total"], rel=1e-6)
        assert scale * w[sel].sum() == pytest.approx(ref["yield_selected"], rel=1e-6)

    # The ntuples as inputs of a config give the same yields table.
    files = {
        name: ntuples / f"ntuple_{lhe.removesuffix('.lhe.gz')}.root"
        for name, (_, _, lhe) in SAMPLES.items()
    }
    config = tmp_path / "root.toml"
    config.write_text(_config_text(files, tmp_path / "out"))
    rows = _rows(yields_table(load_config(config)))
    for name, ref in reference.items():
        assert rows[name]["xsec_source"] == "root_nums"
        for key in ("yield_total", "yield_selected"):
            assert rows[name][key] == pytest.approx(ref[key], rel=1e-6), (name, key)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_split_keeps_the_selected_yield_of_its_component(
    tmp_path: Path, reference: dict[str, dict[str, float]], seed: int
) -> None:
    """Each dataset, for every split seed, adds up to its component's whole selected yield of
    the independent computation: the split scales its events instead of dividing them by the
    nominal fraction (which misses the LIN yield of a split by tens of percent)."""
    files = {name: SSWW_DIR / f for name, (_, _, f) in SAMPLES.items()}
    path = tmp_path / "ssww.toml"
    path.write_text(_config_text(files, tmp_path / "out").replace("seed = 0", f"seed = {seed}"))
    assert main(["-q", "datasets", str(path)]) == 0
    directory = tmp_path / "out" / "datasets"
    sm, lin, quad = (reference[n]["yield_selected"] for n in SAMPLES)
    expected = {"sm_train": sm, "sm_validation": sm, "sm_test": sm, "lin_test_cW": lin}
    expected["quad_test_cW"] = quad
    for name, total in expected.items():
        got = pl.read_parquet(directory / f"{name}.parquet")["yield"].sum()
        assert got == pytest.approx(total, rel=1e-9), name
    mixed = pl.read_parquet(directory / "mixed_train_cW.parquet")
    for component, total in (("sm", sm), ("lin", lin), ("quad", quad)):
        got = mixed.filter(pl.col("component") == component)["yield"].sum()
        assert got == pytest.approx(total, rel=1e-9), component
    # Weights keep their sign: a LIN event's yield is its weight times a positive factor.
    test = pl.read_parquet(directory / "lin_test_cW.parquet")
    assert ((test["yield"] > 0) == (test["w"] > 0)).all()


def test_yields_cli_shows_a_cross_section_that_disagrees_with_the_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong `xsec_pb` override (3 fb against the SM weights' 2.64 fb) is flagged in the
    printed table, in a numbered warning line and in the JSON rows."""
    files = {name: SSWW_DIR / f for name, (_, _, f) in SAMPLES.items()}
    text = _config_text(files, tmp_path / "out")
    text = text.replace('name = "ssww_SM"\n', 'name = "ssww_SM"\nxsec_pb = 3.0e-3\n')
    config = tmp_path / "wrong_xsec.toml"
    config.write_text(text)
    json_path = tmp_path / "y.json"
    assert main(["yields", str(config), "--json", str(json_path)]) == 0
    out = capsys.readouterr().out
    lines = {w: line for line in out.splitlines() for w in line.split() if w.startswith("ssww_")}
    warnings = {
        line.split()[0]: line.split(" warning: ", 1)[1]
        for line in out.splitlines()
        if line.startswith("[")
    }
    # Every real sample's <init> XSECUP is off the banner (a property of these files); only
    # the SM sample's cross section, the one used, also disagrees with its weights.
    assert lines["ssww_SM"].rstrip().endswith("see [1] [2]")
    assert lines["ssww_cW_LIN"].rstrip().endswith("see [3]")
    assert lines["ssww_cW_QUAD"].rstrip().endswith("see [4]")
    assert "disagrees with the MadGraph banner's integrated weight 0.00264003 pb" in warnings["[1]"]
    assert "cross section 0.003 pb (from the config's xsec_pb)" in warnings["[2]"]
    assert "disagrees with the mean event weight 0.00264003 pb of 2000 events" in warnings["[2]"]
    assert not any("mean event weight" in warnings[f"[{i}]"] for i in (1, 3, 4))
    rows = {r["sample"]: r for r in json.loads(json_path.read_text())["rows"] if r["sample"]}
    assert rows["ssww_SM"]["xsec_warning"].splitlines() == [warnings["[1]"], warnings["[2]"]]
    assert rows["ssww_cW_QUAD"]["xsec_warning"] == warnings["[4]"]
