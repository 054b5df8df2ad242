"""Event tables and per-file normalisation on the real SSWW samples and synthetic variants.

Reference values are computed here independently: pylhe for the weights, hashlib for the
checksums, the banner numbers of shared/testdata/ssww/README.md for the cross sections.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pylhe
import pytest
from conftest import SSWW_DIR

from vbsad_batch.demo.lhe_writer import generate_demo
from vbsad_batch.ingest import OBSERVABLE_COLUMNS
from vbsad_batch.ingest.normalisation import FileNormalisation
from vbsad_batch.ingest.preprocess import preprocess
from vbsad_batch.ingest.samples import event_table, lhe_shard_dir

# file -> (banner "Integrated weight (pb)" as in README.md, <init> XSECUP (pb))
REAL = {
    "ssww_SM.lhe.gz": (2.640e-3, 1.005196e-3),
    "ssww_cW_LIN.lhe.gz": (1.184e-4, 7.526964e-05),
    "ssww_cW_QUAD.lhe.gz": (1.542e-3, 1.274119e-05),
}


def _pylhe_weights(path: Path) -> tuple[np.ndarray, list[dict[str, float]]]:
    lhef = pylhe.LHEFile.fromfile(str(path))
    nominal, named = [], []
    for event in lhef.events:
        nominal.append(event.eventinfo.weight)
        named.append(dict(event.weights))
    return np.array(nominal), named


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def real_tables(work_dir: Path) -> dict[str, tuple[pl.LazyFrame, FileNormalisation]]:
    return {name: event_table(SSWW_DIR / name, work_dir=work_dir) for name in REAL}


@pytest.mark.parametrize("name", list(REAL))
def test_real_samples_normalisation(
    name: str, real_tables: dict[str, tuple[pl.LazyFrame, FileNormalisation]]
) -> None:
    path = SSWW_DIR / name
    _, norm = real_tables[name]
    banner, xsecup = REAL[name]
    assert norm.path == path.resolve()
    assert norm.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert norm.xsec_source == "mg_banner"
    assert norm.xsec_pb == pytest.approx(banner, rel=5e-4)  # README rounds to 4 digits
    assert norm.xsec_error_pb is None  # the banner states no error
    assert norm.n_events == 2000
    weights, _ = _pylhe_weights(path)
    assert weights.size == 2000
    assert norm.sum_weights == pytest.approx(float(np.sum(weights)), rel=1e-12)
    assert norm.sum_weights_by_id == {}
    # Exactly one warning: XSECUP disagrees with the banner; the mean-weight check passes.
    (warning,) = norm.warnings
    assert warning.startswith(f"{path.resolve()}: the <init> block's XSECUP sum")
    assert f"{xsecup:.6g} pb" in warning
    assert f"ratio banner/XSECUP = {norm.xsec_pb / xsecup:.3g}" in warning


def test_xsecup_disagreement_is_logged(work_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="vbsad_batch.ingest.normalisation"):
        _, norm = event_table(SSWW_DIR / "ssww_SM.lhe.gz", work_dir=work_dir)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert caplog.records[0].getMessage() == norm.warnings[0]
    assert "ratio banner/XSECUP = 2.63" in norm.warnings[0]


def test_mean_weight_check_numbers() -> None:
    """Why SM, QUAD and LIN pass the mean-weight check (numbers computed here, with pylhe)."""
    for name, (banner, _) in REAL.items():
        weights, _ = _pylhe_weights(SSWW_DIR / name)
        n = weights.size
        mean = float(np.mean(weights))
        mc_error = float(np.std(weights, ddof=1)) / math.sqrt(n)
        if name == "ssww_cW_LIN.lhe.gz":
            # 862 of 2000 weights negative, all +-9.586e-4 pb: the signed mean 1.32e-4 pb differs
            # from the banner's 1.18e-4 pb by 1.4e-5 pb, 0.65 standard errors (2.1e-5 pb).
            assert int(np.sum(weights < 0)) == 862
            assert np.allclose(np.abs(weights), 9.58585e-4)
            assert mean == pytest.approx(1.3228e-4, rel=1e-3)
            assert mc_error == pytest.approx(2.123e-5, rel=1e-2)
            pull = abs(mean - banner) / mc_error
            assert 0.6 < pull < 0.7  # well inside the 3 sigma tolerance
            assert abs(mean - banner) > 1e-5 * banner  # rounding alone would not pass it
        else:
            # unweighted with event_norm = average: every weight is the cross section
            assert np.all(weights == weights[0])
            assert mc_error < 1e-12 * banner
            assert mean == pytest.approx(banner, rel=5e-4)


@pytest.mark.parametrize("name", list(REAL))
def test_real_event_tables(
    name: str, real_tables: dict[str, tuple[pl.LazyFrame, FileNormalisation]]
) -> None:
    frame, norm = real_tables[name]
    events = frame.collect()
    assert events.columns == ["event", *OBSERVABLE_COLUMNS, "w", "input_sha256"]
    assert events["event"].to_list() == list(range(2000))
    assert events["input_sha256"].unique().to_list() == [norm.sha256]
    weights, _ = _pylhe_weights(SSWW_DIR / name)
    np.testing.assert_array_equal(events["w"].to_numpy(), weights)


def _truncate_lhe(source: Path, dest: Path, n_events: int, edit: dict[str, str]) -> Path:
    """Copy an LHE file keeping its header and first `n_events` events, with text edits."""
    text = gzip.decompress(source.read_bytes()).decode()
    for old, new in edit.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    end = 0
    for _ in range(n_events):
        end = text.index("</event>", end) + len("</event>")
    dest.write_text(text[:end] + "\n</LesHouchesEvents>\n")
    return dest


BANNER_SM = "#  Integrated weight (pb)  :       0.002640032203213209"
BANNER_BLOCK = re.compile(r"<MGGenerationInfo>.*?</MGGenerationInfo>\n", re.S)


def test_banner_disagreeing_with_mean_weight_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _truncate_lhe(
        SSWW_DIR / "ssww_SM.lhe.gz",
        tmp_path / "wrong_banner.lhe",
        200,
        {
            BANNER_SM: "#  Integrated weight (pb)  :       0.0020",
            "#  Number of Events        :       2000": "#  Number of Events        :       200",
        },
    )
    with caplog.at_level("WARNING", logger="vbsad_batch.ingest.normalisation"):
        _, norm = event_table(path, work_dir=tmp_path / "work")
    assert norm.xsec_source == "mg_banner"
    assert norm.xsec_pb == 0.002
    assert norm.n_events == 200
    mean_warnings = [w for w in norm.warnings if "mean event weight" in w]
    (message,) = mean_warnings
    assert "cross section 0.002 pb (from the MadGraph banner)" in message
    assert "mean event weight 0.00264003 pb of 200 events" in message
    assert message in caplog.text


def test_without_banner_xsecup_is_used_and_checked(tmp_path: Path) -> None:
    source = SSWW_DIR / "ssww_SM.lhe.gz"
    text = gzip.decompress(source.read_bytes()).decode()
    block = BANNER_BLOCK.search(text)
    assert block is not None
    path = _truncate_lhe(source, tmp_path / "no_banner.lhe", 100, {block.group(0): ""})
    _, norm = event_table(path, work_dir=tmp_path / "work")
    assert norm.xsec_source == "init"
    assert norm.xsec_pb == 1.005196e-3
    assert norm.xsec_error_pb == 3.386261e-05
    # XSECUP is 2.6 times smaller than the weights: the check must say so.
    (message,) = norm.warnings
    assert "(from the <init> XSECUP sum) disagrees with the mean event weight" in message


def test_config_override(tmp_path: Path) -> None:
    path = SSWW_DIR / "ssww_cW_QUAD.lhe.gz"
    _, norm = event_table(path, work_dir=tmp_path, xsec_pb=1.542225e-3)
    assert (norm.xsec_source, norm.xsec_pb, norm.xsec_error_pb) == ("config", 1.542225e-3, None)
    assert not any("mean event weight" in w for w in norm.warnings)
    _, wrong = event_table(path, work_dir=tmp_path, xsec_pb=3.0e-3)
    assert any("(from the config's xsec_pb) disagrees" in w for w in wrong.warnings)


def test_parquet_shard_input_matches_lhe(tmp_path: Path, work_dir: Path) -> None:
    lhe = SSWW_DIR / "ssww_cW_LIN.lhe.gz"
    (result,) = preprocess([lhe], tmp_path / "shards")
    frame_lhe, norm_lhe = event_table(lhe, work_dir=work_dir)
    frame_pq, norm_pq = event_table(result.shard, work_dir=work_dir)
    assert norm_pq.path == result.shard.resolve()
    assert norm_pq.sha256 == norm_lhe.sha256  # the LHE file's, so the split is the same
    assert (norm_pq.xsec_pb, norm_pq.xsec_source) == (norm_lhe.xsec_pb, "mg_banner")
    assert norm_pq.sum_weights == norm_lhe.sum_weights
    assert frame_pq.collect().equals(frame_lhe.collect())
    # Without its manifest the shard's footer metadata is enough.
    result.manifest.unlink()
    _, norm_footer = event_table(result.shard, work_dir=work_dir)
    assert norm_footer.sum_weights == norm_lhe.sum_weights
    assert norm_footer.sha256 == norm_lhe.sha256


def test_lhe_shards_are_cached_and_never_shared(tmp_path: Path) -> None:
    a = tmp_path / "run_01" / "events.lhe.gz"
    b = tmp_path / "run_02" / "events.lhe.gz"
    for path, source in ((a, "ssww_SM.lhe.gz"), (b, "ssww_cW_QUAD.lhe.gz")):
        path.parent.mkdir()
        shutil.copy(SSWW_DIR / source, path)
    work = tmp_path / "work"
    frame_a, norm_a = event_table(a, work_dir=work)
    frame_b, norm_b = event_table(b, work_dir=work)
    assert lhe_shard_dir(a, work) != lhe_shard_dir(b, work)
    # Both frames are still lazy here: each reads its own shard.
    assert float(frame_a.collect()["w"].sum()) == pytest.approx(norm_a.sum_weights)
    assert float(frame_b.collect()["w"].sum()) == pytest.approx(norm_b.sum_weights)
    assert norm_a.sum_weights != norm_b.sum_weights
    shard = next(lhe_shard_dir(a, work).glob("*.parquet"))
    mtime = shard.stat().st_mtime_ns
    event_table(a, work_dir=work)
    assert shard.stat().st_mtime_ns == mtime  # reused, not rewritten


def test_named_weights_of_a_reweighted_sample(tmp_path: Path) -> None:
    (demo,) = generate_demo(tmp_path / "demo", n_events=60, seed=5, eft_samples=False)
    frame, norm = event_table(demo, work_dir=tmp_path / "work", weight_ids=["sm", "cW_p1"])
    _, named = _pylhe_weights(demo)
    for wid in ("sm", "cW_p1", "cW_m1"):
        assert norm.sum_weights_by_id[wid] == pytest.approx(sum(e[wid] for e in named), rel=1e-12)
    assert {"w_sm", "w_cW_p1", "w_cW_m1"} <= set(frame.collect_schema().names())
    assert norm.warnings == ()  # demo: banner = XSECUP = every nominal weight
    with pytest.raises(ValueError, match=r"no weight with id 'cW_p2' \(did you mean 'cW_p1'\?\)"):
        event_table(demo, work_dir=tmp_path / "work", weight_ids=["cW_p2"])


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        event_table(tmp_path / "none.lhe", work_dir=tmp_path)
    with pytest.raises(ValueError, match="not an input file"):
        event_table(tmp_path / "x.csv", work_dir=tmp_path)
    shutil.copy(SSWW_DIR / "ssww_SM.lhe.gz", tmp_path / "x.lhe.gz")
    (result,) = preprocess([tmp_path / "x.lhe.gz"], tmp_path / "shards")
    # a shard whose manifest no longer matches it
    with result.shard.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="size differs from its manifest"):
        event_table(result.shard, work_dir=tmp_path)
