"""ROOT ntuples (D6EFTStudies layout): write/read round trip, lepton order, errors, export.

TNtuple branches are float32: values read back are compared with the float32-rounded inputs
(exactly), and yields with the float64 ones to float32 precision.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import uproot
from conftest import SSWW_DIR

from vbsad_batch.ingest import OBSERVABLE_COLUMNS
from vbsad_batch.ingest.preprocess import preprocess
from vbsad_batch.ingest.root_export import export_shards
from vbsad_batch.ingest.root_ntuple import REQUIRED_BRANCHES, NtupleError, read_ntuple, write_ntuple
from vbsad_batch.ingest.samples import event_table

SM_BANNER_XSEC_PB = 0.002640032203213209  # "Integrated weight (pb)" of ssww_SM.lhe.gz
LEPTON_COLUMNS = ("ptl1", "ptl2", "etal1", "etal2", "phil1", "phil2")


@pytest.fixture(scope="module")
def sm_shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards")
    return preprocess([SSWW_DIR / "ssww_SM.lhe.gz"], out)[0].shard


@pytest.fixture(scope="module")
def sm_table(sm_shard: Path) -> pl.DataFrame:
    return pl.read_parquet(sm_shard)


def _float32(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    return frame.select(pl.col(c).cast(pl.Float32).cast(pl.Float64) for c in columns)


def _swap_leptons(frame: pl.DataFrame, mask: pl.Series | None = None) -> pl.DataFrame:
    pairs = [("ptl1", "ptl2"), ("etal1", "etal2"), ("phil1", "phil2")]
    cond = pl.lit(True) if mask is None else pl.lit(mask)
    return frame.with_columns(
        *(pl.when(cond).then(pl.col(b)).otherwise(pl.col(a)).alias(a) for a, b in pairs),
        *(pl.when(cond).then(pl.col(a)).otherwise(pl.col(b)).alias(b) for a, b in pairs),
    )


def test_round_trip_gives_the_float32_values(sm_table: pl.DataFrame, tmp_path: Path) -> None:
    sumw = float(sm_table["w"].sum())
    path = write_ntuple(
        sm_table,
        tmp_path / "ntuple_ssww_SM.root",
        sample="ssww_SM",
        xsec_pb=SM_BANNER_XSEC_PB,
        sumw=sumw,
    )
    assert path == tmp_path / "ntuple_ssww_SM.root"
    events, xsec, sumw_read, warnings = read_ntuple(path)
    assert warnings == ()
    columns = [*OBSERVABLE_COLUMNS, "w"]
    assert events.columns == columns
    assert events.schema == pl.Schema(dict.fromkeys(columns, pl.Float64()))
    assert events.equals(_float32(sm_table, columns))  # exact: float32 rounding only
    assert xsec == float(np.float32(SM_BANNER_XSEC_PB))
    assert sumw_read == float(np.float32(sumw))
    # float32 is ~7 significant digits: the float64 values agree to that.
    np.testing.assert_allclose(events["mjj"].to_numpy(), sm_table["mjj"].to_numpy(), rtol=1e-7)

    # What a downstream ROOT user sees, read with uproot directly: a TTree (not an RNTuple)
    # with float branches, and a TH1F with the cross section and the sum of weights.
    with uproot.open(path) as f:
        classes = {k.split(";")[0]: v for k, v in f.classnames().items()}
        assert classes == {"ssww_SM": "TTree", "ssww_SM_nums": "TH1F"}
        tree = f["ssww_SM"]
        assert tree.num_entries == sm_table.height
        assert set(tree.keys()) == set(columns)
        assert {str(tree[c].interpretation) for c in columns} == {"AsDtype('>f4')"}
        hist = f["ssww_SM_nums"]
        values = hist.values()
        assert values.dtype == np.float32
        assert values.tolist() == [np.float32(SM_BANNER_XSEC_PB), np.float32(sumw)]


def test_named_weights_and_nulls(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {c: [float(i + 1) for i in range(3)] for c in REQUIRED_BRANCHES}
        | {"ptl1": [5.0, 6.0, 7.0], "ptl2": [1.0, 2.0, 3.0]}
        | {"w_a": [1.5, None, -2.0], "event": [0, 1, 2]}
    )
    path = write_ntuple(frame, tmp_path / "ntuple_x.root", sample="x", xsec_pb=1.0, sumw=6.0)
    events, _, _, warnings = read_ntuple(path)
    assert warnings == ()
    assert "event" not in events.columns
    assert events["w_a"].to_list() == [1.5, None, -2.0]
    # optional observables the writer did not get are null columns
    for name in ("phij1", "phij2", "phil1", "phil2"):
        assert events[name].null_count() == 3


def test_ascending_pt_files_are_reordered(sm_table: pl.DataFrame, tmp_path: Path) -> None:
    swapped = _swap_leptons(sm_table)
    assert (swapped["ptl1"] <= swapped["ptl2"]).all()
    path = write_ntuple(swapped, tmp_path / "ntuple_asc.root", sample="asc", xsec_pb=1.0, sumw=1.0)
    events, _, _, warnings = read_ntuple(path)
    (message,) = warnings
    assert str(path) in message
    assert "ascending pT" in message
    assert f"all {sm_table.height} events" in message
    assert "ptl1/ptl2, etal1/etal2, phil1/phil2" in message
    expected = _float32(sm_table, list(LEPTON_COLUMNS))
    assert events.select(LEPTON_COLUMNS).equals(expected)
    # symmetric observables are untouched
    assert events["mll"].equals(_float32(sm_table, ["mll"])["mll"])


def test_normal_files_are_untouched(sm_table: pl.DataFrame, tmp_path: Path) -> None:
    assert (sm_table["ptl1"] >= sm_table["ptl2"]).all()
    path = write_ntuple(sm_table, tmp_path / "ntuple_n.root", sample="n", xsec_pb=1.0, sumw=1.0)
    events, _, _, warnings = read_ntuple(path)
    assert warnings == ()
    assert events.select(LEPTON_COLUMNS).equals(_float32(sm_table, list(LEPTON_COLUMNS)))


def test_mixed_lepton_order_is_fixed_per_event(
    sm_table: pl.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mask = pl.Series([i % 3 == 0 for i in range(sm_table.height)])
    mixed = _swap_leptons(sm_table, mask)
    path = write_ntuple(mixed, tmp_path / "ntuple_m.root", sample="m", xsec_pb=1.0, sumw=1.0)
    with caplog.at_level("WARNING", logger="vbsad_batch.ingest.root_ntuple"):
        events, _, _, warnings = read_ntuple(path)
    (message,) = warnings
    assert f"{int(mask.sum())} of {sm_table.height} events have ptl1 < ptl2" in message
    assert message in caplog.text
    assert events.select(LEPTON_COLUMNS).equals(_float32(sm_table, list(LEPTON_COLUMNS)))


# --- missing pieces -------------------------------------------------------------------------------


def _raw_file(path: Path, *, tree: str | None, branches: list[str], nums: str | None) -> Path:
    """A file written with uproot directly (TH1D for the histogram, as some tools do)."""
    with uproot.recreate(path) as f:
        if tree is not None:
            f.mktree(tree, dict.fromkeys(branches, np.float32))
            f[tree].extend({b: np.array([2.0, 1.0], dtype=np.float32) for b in branches})
        if nums is not None:
            f[nums] = (np.array([0.5, 4.0]), np.array([0.0, 1.0, 2.0]))
    return path


def test_th1d_nums_and_old_ntuples_without_phi(tmp_path: Path) -> None:
    branches = [b for b in REQUIRED_BRANCHES]
    path = _raw_file(tmp_path / "ntuple_old.root", tree="old", branches=branches, nums="old_nums")
    events, xsec, sumw, _ = read_ntuple(path)
    assert (xsec, sumw) == (0.5, 4.0)
    assert events.height == 2
    assert events["phil1"].null_count() == 2


@pytest.mark.parametrize(
    ("tree", "branches", "nums", "pattern"),
    [
        (None, [], "s_nums", r"missing the TNtuple 's'"),
        ("s", list(REQUIRED_BRANCHES), None, r"missing the histogram 's_nums'"),
        ("s", [b for b in REQUIRED_BRANCHES if b not in ("mjj", "w")], "s_nums", r"mjj, w"),
    ],
)
def test_missing_pieces_are_named(
    tmp_path: Path, tree: str | None, branches: list[str], nums: str | None, pattern: str
) -> None:
    path = _raw_file(tmp_path / "ntuple_s.root", tree=tree, branches=branches, nums=nums)
    with pytest.raises(NtupleError, match=pattern) as info:
        read_ntuple(path)
    assert str(path) in str(info.value)


def test_sample_name_from_contents_or_error(tmp_path: Path) -> None:
    branches = list(REQUIRED_BRANCHES)
    path = _raw_file(tmp_path / "events.root", tree="zz", branches=branches, nums="zz_nums")
    assert read_ntuple(path)[1] == 0.5
    with uproot.update(path) as f:
        f.mktree("yy", {"w": np.float32})
        f["yy_nums"] = (np.array([1.0, 1.0]), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(NtupleError, match="cannot tell the sample name"):
        read_ntuple(path)


def test_not_root_and_no_file(tmp_path: Path) -> None:
    bad = tmp_path / "ntuple_bad.root"
    bad.write_text("not ROOT")
    with pytest.raises(NtupleError, match="not a readable ROOT file"):
        read_ntuple(bad)
    with pytest.raises(FileNotFoundError):
        read_ntuple(tmp_path / "ntuple_none.root")


def test_write_refuses_bad_input(sm_table: pl.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid sample name"):
        write_ntuple(sm_table, tmp_path / "a.root", sample="a/b", xsec_pb=1.0, sumw=1.0)
    with pytest.raises(ValueError, match="no weight column"):
        write_ntuple(sm_table.drop("w"), tmp_path / "a.root", sample="a", xsec_pb=1.0, sumw=1.0)
    with pytest.raises(ValueError, match="sumw must be finite"):
        write_ntuple(sm_table, tmp_path / "a.root", sample="a", xsec_pb=1.0, sumw=0.0)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


# --- export and the LHE -> Parquet -> ROOT -> yields round trip ---------------------------------


def test_export_shards_and_yields_round_trip(
    sm_shard: Path, sm_table: pl.DataFrame, tmp_path: Path
) -> None:
    (ntuple,) = export_shards([sm_shard.parent], tmp_path / "root")
    assert ntuple == tmp_path / "root" / "ntuple_ssww_SM.root"
    manifest = json.loads((tmp_path / "root" / "ntuple_ssww_SM.manifest.json").read_text())
    assert manifest["xsec_source"] == "mg_banner"
    assert manifest["xsec_pb"] == SM_BANNER_XSEC_PB
    assert any("XSECUP" in w for w in manifest["warnings"])

    frame, norm = event_table(ntuple, work_dir=tmp_path / "work")
    assert norm.xsec_source == "root_nums"
    assert norm.warnings == ()  # the mean-weight check passes
    events = frame.collect()
    assert events["event"].to_list() == list(range(sm_table.height))
    assert events.select([*OBSERVABLE_COLUMNS, "w"]).equals(
        _float32(sm_table, [*OBSERVABLE_COLUMNS, "w"])
    )

    # Yields at 350 fb^-1 (events = w [pb] * XS [pb] * 1000 * L [fb^-1] / sumw [pb]), computed
    # here from the LHE shard (float64) and from the ntuple (float32): equal to float32 precision.
    lumi_fb = 350.0
    selection = (
        (pl.col("ptj1") > 30)
        & (pl.col("ptj2") > 30)
        & (pl.col("deltaetajj") > 2)
        & (pl.col("mjj") > 200)
    )
    sumw_lhe = float(sm_table["w"].sum())
    for cut in (pl.lit(True), selection):
        from_lhe = (
            float(sm_table.filter(cut)["w"].sum()) * SM_BANNER_XSEC_PB * 1000 * lumi_fb / sumw_lhe
        )
        from_root = (
            float(events.filter(cut)["w"].sum()) * norm.xsec_pb * 1000 * lumi_fb / norm.sum_weights
        )
        assert from_root == pytest.approx(from_lhe, rel=3e-7)
    # all events pass the generator cuts, about 2/3 the VBS selection: the check is not trivial
    assert 0 < events.filter(selection).height < events.height
