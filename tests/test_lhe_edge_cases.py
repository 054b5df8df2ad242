"""Edge cases and malformed input for the LHE ingest, on small hand-written files.

Every test writes an LHE text to tmp_path (plain and/or gzip) and checks precise values:
parsed numbers, observables computed by hand, weights, event indices, error locations.

Line numbers are 1-based in the decompressed text; event indices are 0-based and count
every event of the file.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import LHE_DIR, SSWW_DIR
from hypothesis import HealthCheck, given, settings, strategies as st
from lhe_reference import OBSERVABLE_NAMES

import vbsad_batch

OBS = list(OBSERVABLE_NAMES)  # the spec's names, as the independent reference has them
REJ_L = "fewer_than_two_charged_leptons"
REJ_J = "fewer_than_two_jets"

# --------------------------------------------------------------------------------------
# Building LHE text
# --------------------------------------------------------------------------------------

# (pid, status, mother1, mother2, color1, color2, px, py, pz, e, m, lifetime, spin)
Particle = tuple

# The canonical event: observables computable by hand.
#   leptons: e- (40, 0, 0; E 40) -> l1; mu+ (0, 30, 0; E 30) -> l2 (written first)
#   neutrinos: (10, 0) and (0, -10) -> met = sqrt(200)
#   jets: u (0, -60, 80; E 100) -> j1, eta = asinh(4/3) = ln 3, phi = -pi/2
#         g (-30, 0, -40; E 50) -> j2 (written first), eta = -ln 3, phi = pi
#   ignored: incoming partons (status -1), a status-2 b quark and tau with large pT,
#            a status-1 photon.
CANON: list[Particle] = [
    (2, -1, 0, 0, 501, 0, 0, 0, 1000, 1000, 0, 0, 9),
    (21, -1, 0, 0, 502, 503, 0, 0, -1000, 1000, 0, 0, 9),
    (5, 2, 1, 2, 0, 0, 500, 0, 0, 600, 4.7, 0, 9),
    (15, 2, 1, 2, 0, 0, 0, 300, 0, 400, 1.777, 0, 9),
    (-13, 1, 1, 2, 0, 0, 0, 30, 0, 30, 0, 0, 9),
    (11, 1, 1, 2, 0, 0, 40, 0, 0, 40, 0, 0, 9),
    (12, 1, 1, 2, 0, 0, 10, 0, 0, 10, 0, 0, 9),
    (-14, 1, 1, 2, 0, 0, 0, -10, 0, 10, 0, 0, 9),
    (21, 1, 1, 2, 501, 502, -30, 0, -40, 50, 0, 0, 9),
    (2, 1, 1, 2, 503, 0, 0, -60, 80, 100, 0, 0, 9),
    (22, 1, 1, 2, 0, 0, 5, 5, 0, 7.0710678118654755, 0, 0, 9),
]
LN3 = math.log(3.0)
CANON_OBS = {
    "mll": math.sqrt(2400.0),
    "mjj": math.sqrt(16400.0),
    "ptl1": 40.0,
    "ptl2": 30.0,
    "ptj1": 60.0,
    "ptj2": 30.0,
    "ptll": 50.0,
    "met": math.sqrt(200.0),
    "etal1": 0.0,
    "etal2": 0.0,
    "etaj1": LN3,
    "etaj2": -LN3,
    "deltaetajj": 2.0 * LN3,
    "deltaphijj": math.pi / 2.0,
    "phij1": -math.pi / 2.0,
    "phij2": math.pi,
    "phil1": 0.0,
    "phil2": math.pi / 2.0,
}

# One charged lepton only (the tau has status 2): rejected for leptons.
ONE_LEPTON: list[Particle] = [p for p in CANON if not (p[0] == -13 and p[1] == 1)]
# Two leptons, one jet: rejected for jets.
ONE_JET: list[Particle] = [p for p in CANON if not (p[0] == 21 and p[1] == 1)]
# Neither: rejected for leptons (leptons are checked first).
NOTHING: list[Particle] = [p for p in CANON if p[1] != 1 or p[0] in (12, -14, 22)]
# e+ and tau- (both status 1) with b and anti-top jets and one nu_tau.
TAU_TOP: list[Particle] = [
    (2, -1, 0, 0, 501, 0, 0, 0, 1000, 1000, 0, 0, 9),
    (21, -1, 0, 0, 502, 503, 0, 0, -1000, 1000, 0, 0, 9),
    (-11, 1, 1, 2, 0, 0, 0, 20, 0, 20, 0, 0, 9),
    (15, 1, 1, 2, 0, 0, 25, 0, 0, 25, 0, 0, 9),
    (16, 1, 1, 2, 0, 0, 3, 4, 0, 5, 0, 0, 9),
    (5, 1, 1, 2, 501, 0, 70, 0, 0, 70, 0, 0, 9),
    (-6, 1, 1, 2, 0, 502, 0, 65, 0, 65, 0, 0, 9),
    (1, 1, 1, 2, 503, 0, 0, -10, 0, 10, 0, 0, 9),
]

INIT = (
    "<init>\n"
    " 2212 2212 6.5000000E+03 6.5000000E+03 0 0 247000 247000 -4 1\n"
    " 1.2500000E+00 2.5000000E-02 1.2500000E+00 1\n"
    "</init>\n"
)
HEADER = "<header>\n<MGVersion>\n3.5.7\n</MGVersion>\n</header>\n"


def pline(p: Particle, *, sep: str = " ", indent: str = " ") -> str:
    return indent + sep.join(str(x) for x in p)


def event(
    particles: list[Particle],
    *,
    weight: str = "1.0E+00",
    nup: int | str | None = None,
    head: str | None = None,
    extra: str = "",
    attrs: str = "",
    sep: str = " ",
    indent: str = " ",
) -> str:
    """One `<event>` block; `extra` goes after the particle lines."""
    n = len(particles) if nup is None else nup
    if head is None:
        head = f"{n} 1 {weight} 9.1188000E+01 7.5467711E-03 1.1800000E-01"
    lines = [f"<event{attrs}>", indent + head]
    lines += [pline(p, sep=sep, indent=indent) for p in particles]
    if extra:
        lines.append(extra.rstrip("\n"))
    lines.append("</event>")
    return "\n".join(lines) + "\n"


def document(
    events: list[str],
    *,
    version: str = "3.0",
    header: str | None = HEADER,
    init: str = INIT,
    trailer: str = "</LesHouchesEvents>\n",
) -> str:
    text = f'<LesHouchesEvents version="{version}">\n'
    if header is not None:
        text += header
    text += init
    text += "".join(events)
    text += trailer
    return text


def write(tmp_path: Path, name: str, text: str | bytes, *, gz: bool = False) -> Path:
    data = text.encode() if isinstance(text, str) else text
    if gz:
        data = gzip.compress(data)
    path = tmp_path / name
    path.write_bytes(data)
    return path


def line_of(text: str, marker: str, *, occurrence: int = 1) -> int:
    """1-based line number of the `occurrence`-th occurrence of `marker`."""
    pos = -1
    for _ in range(occurrence):
        pos = text.index(marker, pos + 1)
    return text.count("\n", 0, pos) + 1


def drain(reader, path: str | Path, **kw) -> pa.Table:
    """Read a whole stream by Python iteration (errors surface as LheParseError)."""
    batches = list(reader(str(path), **kw))
    if batches:
        return pa.Table.from_batches(batches)
    # no batch at all: read again through the C stream to get the (empty) table's schema
    return pa.table(reader(str(path), **kw))


def obs_table(path: Path, **kw) -> pa.Table:
    return drain(vbsad_batch.read_lhe, path, **kw)


def particle_table(path: Path, **kw) -> pa.Table:
    return drain(vbsad_batch.read_lhe_particles, path, **kw)


def col(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist()


def assert_canon_row(table: pa.Table, row: int = 0, *, event_index: int = 0) -> None:
    assert col(table, "event")[row] == event_index
    for name, value in CANON_OBS.items():
        got = col(table, name)[row]
        assert got == pytest.approx(value, rel=1e-12, abs=1e-12), name


def expected_particle_columns(events: list[list[Particle]]) -> dict[str, list]:
    names = [
        "pid",
        "status",
        "mother1",
        "mother2",
        "color1",
        "color2",
        "px",
        "py",
        "pz",
        "e",
        "m",
        "lifetime",
        "spin",
    ]
    out: dict[str, list] = {"event": []}
    for n in names:
        out[n] = []
    for index, particles in enumerate(events):
        for p in particles:
            out["event"].append(index)
            for n, v in zip(names, p, strict=True):
                out[n].append(int(v) if n in names[:6] else float(v))
    return out


def assert_particles(table: pa.Table, events: list[list[Particle]]) -> None:
    expected = expected_particle_columns(events)
    assert table.num_rows == len(expected["event"])
    for name, values in expected.items():
        np.testing.assert_array_equal(
            np.asarray(col(table, name), dtype=float),
            np.asarray(values, dtype=float),
            err_msg=name,
        )


PLAIN_GZ = pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])

# --------------------------------------------------------------------------------------
# Basic values
# --------------------------------------------------------------------------------------


@PLAIN_GZ
def test_canonical_event_values(tmp_path: Path, gz: bool) -> None:
    text = document([event(CANON, weight="2.5E-01")])
    path = write(tmp_path, "canon.lhe" + (".gz" if gz else ""), text, gz=gz)
    table = obs_table(path)
    assert table.num_rows == 1
    assert_canon_row(table)
    assert col(table, "w") == [0.25]
    assert_particles(particle_table(path), [CANON])
    info = vbsad_batch.lhe_info(str(path))
    assert info.n_events == 1
    assert info.n_rows == 1
    assert info.sum_weights["w"] == 0.25
    assert info.rejected == {REJ_L: 0, REJ_J: 0}
    assert list(info.beams["idbmup"]) == [2212, 2212]
    assert list(info.beams["ebmup"]) == [6500.0, 6500.0]
    assert list(info.beams["pdfgup"]) == [0, 0]
    assert list(info.beams["pdfsup"]) == [247000, 247000]
    assert info.beams["idwtup"] == -4
    assert info.beams["nprup"] == 1
    assert [(p["xsecup"], p["xerrup"], p["xmaxup"], p["lprup"]) for p in info.processes] == [
        (1.25, 0.025, 1.25, 1)
    ]
    assert info.mg_generation_info is None
    assert info.n_skipped == 0


def test_phi_of_negative_zero_py_is_plus_pi(tmp_path: Path) -> None:
    # jet 2 at px < 0, py = -0.0: arctan2 gives -pi, but phi is in (-pi, pi]
    particles = [(*p[:7], "-0.0", *p[8:]) if (p[0] == 21 and p[1] == 1) else p for p in CANON]
    path = write(tmp_path, "negzero.lhe", document([event(particles)]))
    table = obs_table(path)
    assert col(table, "phij2") == [math.pi]
    assert col(table, "deltaphijj")[0] == pytest.approx(math.pi / 2, rel=1e-12)


def test_selection_and_rejection_reasons(tmp_path: Path) -> None:
    events = [CANON, ONE_LEPTON, ONE_JET, NOTHING, CANON, TAU_TOP]
    weights = ["1", "2", "4", "8", "16", "-32"]
    text = document([event(e, weight=w) for e, w in zip(events, weights, strict=True)])
    path = write(tmp_path, "select.lhe", text)
    stream = vbsad_batch.read_lhe(str(path))
    table = pa.table(stream)
    assert col(table, "event") == [0, 4, 5]
    assert col(table, "w") == [1.0, 16.0, -32.0]
    assert_canon_row(table, 0, event_index=0)
    assert_canon_row(table, 1, event_index=4)
    # TAU_TOP: tau counts as a charged lepton, b and top as jets, nu_tau in met
    assert col(table, "ptl1")[2] == 25.0
    assert col(table, "ptl2")[2] == 20.0
    assert col(table, "ptj1")[2] == 70.0
    assert col(table, "ptj2")[2] == 65.0
    assert col(table, "met")[2] == 5.0
    assert col(table, "deltaphijj")[2] == pytest.approx(math.pi / 2, rel=1e-12)
    for info in (stream.info(), vbsad_batch.lhe_info(str(path))):
        assert info.n_events == 6
        assert info.n_rows == 3
        assert info.rejected == {REJ_L: 2, REJ_J: 1}
        assert info.sum_weights["w"] == 1 + 2 + 4 + 8 + 16 - 32
    # every particle of every event, rejected or not
    assert_particles(particle_table(path), events)


def test_file_without_events(tmp_path: Path) -> None:
    path = write(tmp_path, "noevents.lhe", document([]))
    table = obs_table(path)
    assert table.num_rows == 0
    assert table.column_names[:20] == ["event", *OBS, "w"]
    assert particle_table(path).num_rows == 0
    info = vbsad_batch.lhe_info(str(path))
    assert info.n_events == 0
    assert info.sum_weights["w"] == 0.0


# --------------------------------------------------------------------------------------
# Headers and layout
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "2.0", "3.0"])
@PLAIN_GZ
def test_lhef_versions(tmp_path: Path, version: str, gz: bool) -> None:
    text = document([event(CANON), event(ONE_JET)], version=version)
    path = write(tmp_path, f"v{version}.lhe" + (".gz" if gz else ""), text, gz=gz)
    table = obs_table(path)
    assert table.num_rows == 1
    assert_canon_row(table)
    info = vbsad_batch.lhe_info(str(path))
    assert info.lhef_version == version
    assert info.n_events == 2


def test_missing_header(tmp_path: Path) -> None:
    path = write(tmp_path, "noheader.lhe", document([event(CANON)], header=None))
    assert_canon_row(obs_table(path))
    assert vbsad_batch.lhe_info(str(path)).n_events == 1


def test_header_with_xml_comment_and_preamble_comment(tmp_path: Path) -> None:
    text = document([event(CANON)]).replace(
        "<header>",
        "<!--\n  numevts 100\n  ih1 1 ih2 1\n  ebeam1 4000d0\n-->\n<header>",
        1,
    )
    path = write(tmp_path, "comment.lhe", text)
    assert_canon_row(obs_table(path))
    assert vbsad_batch.lhe_info(str(path)).n_events == 1


@PLAIN_GZ
def test_indentation_tabs_and_crlf(tmp_path: Path, gz: bool) -> None:
    ev = event(CANON, sep="\t  ", indent="\t \t", attrs="")
    ev = ev.replace("<event>", "   <event>").replace("</event>", "\t</event>  ")
    text = document([ev, event(CANON, sep=" \t ")]).replace("\n", "\r\n")
    path = write(tmp_path, "crlf.lhe" + (".gz" if gz else ""), text, gz=gz)
    table = obs_table(path)
    assert col(table, "event") == [0, 1]
    assert_canon_row(table, 0, event_index=0)
    assert_canon_row(table, 1, event_index=1)
    assert_particles(particle_table(path), [CANON, CANON])


def test_number_formats(tmp_path: Path) -> None:
    odd: list[Particle] = [
        (22, 1, 1, 2, 0, 0, ".5", "+1.0", "1", "1.0D+03", "1.0d-3", "NaN", "Inf"),
        (22, 1, 1, 2, 0, 0, "-.5", "1.", "-0", "1.5e+2", "2.5E-3", "-Inf", "+9.0E+00"),
    ]
    head = "13 1 1.0D+03 9.1188000E+01 7.5467711E-03 1.1800000E-01"
    extra = "<rwgt>\n<wgt id='a'>2.5d-1</wgt>\n<wgt id='b'>-1.5D+02</wgt>\n</rwgt>"
    header = (
        "<header>\n<initrwgt>\n<weight id='a'>A</weight>\n<weight id='b'>B</weight>\n"
        "</initrwgt>\n</header>\n"
    )
    text = document([event(CANON + odd, head=head, extra=extra)], header=header)
    path = write(tmp_path, "numbers.lhe", text)
    parts = particle_table(path)
    rows = parts.slice(len(CANON), 2).to_pydict()
    assert rows["px"] == [0.5, -0.5]
    assert rows["py"] == [1.0, 1.0]
    assert rows["pz"] == [1.0, 0.0]
    assert rows["e"] == [1000.0, 150.0]
    assert rows["m"] == [1.0e-3, 2.5e-3]
    assert math.isnan(rows["lifetime"][0])
    assert rows["lifetime"][1] == -math.inf
    assert rows["spin"] == [math.inf, 9.0]
    table = obs_table(path)
    assert_canon_row(table)
    assert col(table, "w") == [1000.0]
    assert col(table, "w_a") == [0.25]
    assert col(table, "w_b") == [-150.0]


@pytest.mark.parametrize(
    "extra",
    [
        "#aMCatNLO 1 6 2 0 0 0.1E+00 0.2E+00 9 0 0\n# second comment line",
        "  0.1 0.2 0.3 some untagged info\n#rwgt 1 97 3.14E-02 28582 27 0",
        "<!-- one-line comment 1 2 3 -->",
        "<!--\n 11 1 1 2 0 0 999 0 0 999 0 0 9\n<rwgt><wgt id='x'>99</wgt></rwgt>\n-->",
        "<scales muf='91.1' mur='45.6' pt_clust_1='10.0'/>",
        "<clustering>\n<clus> 1 2 </clus>\n<clus> 3 4 </clus>\n</clustering>",
        (
            "<mgrwt>\n<rscale>  1 0.29269792E+02</rscale>\n<asrwt>0</asrwt>\n"
            '<pdfrwt beam="1">  1       21 0.58195187E-04 0.29269792E+02</pdfrwt>\n'
            '<pdfrwt beam="2">  1        2 0.13160000E+00 0.29269792E+02</pdfrwt>\n'
            "<totfact> 0.12345E+03</totfact>\n</mgrwt>"
        ),
    ],
    ids=[
        "hash-lines",
        "untagged-info",
        "xml-comment-1line",
        "xml-comment-multiline",
        "scales",
        "clustering",
        "mgrwt",
    ],
)
def test_ignored_content_inside_events(tmp_path: Path, extra: str) -> None:
    text = document([event(CANON, extra=extra), event(CANON, weight="3.0")])
    path = write(tmp_path, "extra.lhe", text)
    table = obs_table(path)
    assert col(table, "event") == [0, 1]
    assert col(table, "w") == [1.0, 3.0]
    assert_canon_row(table, 0, event_index=0)
    assert_canon_row(table, 1, event_index=1)
    assert [c for c in table.column_names if c.startswith("w_")] == []
    assert_particles(particle_table(path), [CANON, CANON])


def test_event_attributes(tmp_path: Path) -> None:
    text = document(
        [
            event(CANON, attrs=" npLO=' -1 ' npNLO=' 1 '"),
            event(CANON, attrs=' trials="8" muf2="1.9E+03" mur2=\'112.0\''),
        ]
    )
    path = write(tmp_path, "attrs.lhe", text)
    table = obs_table(path)
    assert col(table, "event") == [0, 1]
    assert_canon_row(table, 1, event_index=1)


# --------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------

INITRWGT = (
    "<initrwgt>\n"
    "<weightgroup name='scale_variation' combine='envelope'>\n"
    "<weight id='1001'> muR=1 muF=1 </weight>\n"
    '<weight id="1002"> muR=2 muF=2 </weight>\n'
    "</weightgroup>\n"
    "<weightgroup name='SMEFT'>\n"
    "<weight id='cW_p1'>set param_card cW 1.0</weight>\n"
    "</weightgroup>\n"
    "<weight id='lone'>outside any group</weight>\n"
    "</initrwgt>\n"
)
RWGT_IDS = ["1001", "1002", "cW_p1", "lone"]


def _rwgt(values: dict[str, str]) -> str:
    body = "\n".join(f"  <wgt id='{k}'> {v} </wgt>" for k, v in values.items())
    return f"<rwgt>\n{body}\n</rwgt>"


@pytest.mark.parametrize("where", ["header", "init"])
@PLAIN_GZ
def test_rwgt_weights(tmp_path: Path, where: str, gz: bool) -> None:
    if where == "header":
        header = f"<header>\n{INITRWGT}</header>\n"
        init = INIT
    else:
        header = HEADER
        init = INIT.replace("</init>", INITRWGT + "</init>")
    events = [
        # written in another order than declared
        event(
            CANON,
            extra=_rwgt({"lone": "4.0", "1002": "2.0", "1001": "1.0", "cW_p1": "-3.5E-01"}),
        ),
        event(
            ONE_JET,
            weight="5",
            extra=_rwgt({"1001": "10", "1002": "20", "cW_p1": "30", "lone": "40"}),
        ),
        # lacks 'lone' -> null
        event(
            CANON,
            weight="7",
            extra=_rwgt({"1001": "0.5", "1002": "+2.5e+1", "cW_p1": "1E-3"}),
        ),
    ]
    text = document(events, header=header, init=init)
    path = write(tmp_path, "rwgt.lhe" + (".gz" if gz else ""), text, gz=gz)
    stream = vbsad_batch.read_lhe(str(path))
    table = pa.table(stream)
    assert table.column_names == ["event", *OBS, "w", *(f"w_{i}" for i in RWGT_IDS)]
    assert col(table, "event") == [0, 2]
    assert col(table, "w") == [1.0, 7.0]
    assert col(table, "w_1001") == [1.0, 0.5]
    assert col(table, "w_1002") == [2.0, 25.0]
    assert col(table, "w_cW_p1") == [-0.35, 1e-3]
    assert col(table, "w_lone") == [4.0, None]
    for info in (stream.info(), vbsad_batch.lhe_info(str(path))):
        assert info.sum_weights["w"] == 13.0
        assert info.sum_weights["1001"] == 11.5
        assert info.sum_weights["1002"] == 47.0
        assert info.sum_weights["cW_p1"] == pytest.approx(30 - 0.35 + 1e-3, rel=1e-15)
        assert info.sum_weights["lone"] == 44.0
        assert [w["id"] for w in info.weights] == RWGT_IDS
        desc = {w["id"]: (w["description"] or "").strip() for w in info.weights}
        assert desc == {
            "1001": "muR=1 muF=1",
            "1002": "muR=2 muF=2",
            "cW_p1": "set param_card cW 1.0",
            "lone": "outside any group",
        }
        groups = {w["id"]: w["group"] for w in info.weights}
        assert groups["1001"] == groups["1002"] == "scale_variation"
        assert groups["cW_p1"] == "SMEFT"


@pytest.mark.parametrize(
    "layout",
    ["one-line", "one-per-line"],
)
def test_compact_weights(tmp_path: Path, layout: str) -> None:
    def block(values: list[str]) -> str:
        if layout == "one-line":
            return "<weights> " + " ".join(values) + " </weights>"
        return "<weights>\n" + "\n".join(values) + "\n</weights>"

    header = f"<header>\n{INITRWGT}</header>\n"
    events = [
        event(CANON, extra=block(["1.5", "2.5", "-3.5", "4.5E+00"])),
        event(
            CANON,
            weight="2",
            extra=block(["0.11E+02", "0.22E+02", "0.33E+02", "0.44E+02"]),
        ),
    ]
    path = write(tmp_path, "weights.lhe", document(events, header=header))
    table = obs_table(path)
    assert col(table, "event") == [0, 1]
    assert col(table, "w_1001") == [1.5, 11.0]
    assert col(table, "w_1002") == [2.5, 22.0]
    assert col(table, "w_cW_p1") == [-3.5, 33.0]
    assert col(table, "w_lone") == [4.5, 44.0]
    info = vbsad_batch.lhe_info(str(path))
    assert info.sum_weights["1001"] == 12.5
    assert info.sum_weights["lone"] == 48.5


def test_lhef2_named_event_weights(tmp_path: Path) -> None:
    # WHIZARD style: <weight name=..> inside the event, not declared in <initrwgt>
    events = [
        event(CANON, extra='<weight name="sqme_prc">1.5210038644E-01</weight>'),
        event(ONE_JET, extra='<weight name="sqme_prc">2.0E+00</weight>'),
        event(CANON, weight="3", extra='<weight name="sqme_prc">5.3027251460E+00</weight>'),
    ]
    path = write(tmp_path, "whizard.lhe", document(events, version="2.0", header=None))
    table = obs_table(path)
    assert col(table, "event") == [0, 2]
    assert col(table, "w_sqme_prc") == [1.5210038644e-01, 5.3027251460e00]
    info = vbsad_batch.lhe_info(str(path))
    assert info.sum_weights["sqme_prc"] == pytest.approx(
        1.5210038644e-01 + 2.0 + 5.3027251460e00, rel=1e-15
    )


# --------------------------------------------------------------------------------------
# End of file, gzip
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trailer",
    [
        "</LesHouchesEvents>\nsome junk\n1 2 3\n<event>\n",
        "</LesHouchesEvents>",
        "</LesHouchesEvents>\n\n\n",
    ],
    ids=["junk-after-end", "no-final-newline", "blank-lines"],
)
@PLAIN_GZ
def test_end_of_file_variants(tmp_path: Path, trailer: str, gz: bool) -> None:
    text = document([event(CANON), event(CANON)], trailer=trailer)
    path = write(tmp_path, "eof.lhe" + (".gz" if gz else ""), text, gz=gz)
    table = obs_table(path)
    assert col(table, "event") == [0, 1]
    info = vbsad_batch.lhe_info(str(path))
    assert info.n_events == 2
    assert info.n_skipped == 0


def test_no_final_newline_after_last_event_line(tmp_path: Path) -> None:
    text = document([event(CANON)], trailer="").rstrip("\n")  # ends with "</event>"
    path = write(tmp_path, "noend.lhe", text)
    # The last event is complete; only </LesHouchesEvents> is missing. Either the
    # event is returned, or the missing end tag is reported precisely.
    error: vbsad_batch.LheParseError | None = None
    try:
        table = obs_table(path)
    except vbsad_batch.LheParseError as exc:
        error = exc
    if error is None:
        assert col(table, "event") == [0]
    else:
        assert error.path == str(path)
        assert "noend.lhe" in str(error)


def test_gzip_detected_by_magic_bytes(tmp_path: Path) -> None:
    text = document([event(CANON), event(CANON)])
    gz_named_plain = write(tmp_path, "compressed.lhe", text, gz=True)
    plain_named_gz = write(tmp_path, "plain.lhe.gz", text, gz=False)
    for path in (gz_named_plain, plain_named_gz):
        table = obs_table(path)
        assert col(table, "event") == [0, 1], path.name
        assert_canon_row(table, 1, event_index=1)
        assert vbsad_batch.lhe_info(str(path)).n_events == 2


def test_multi_member_gzip(tmp_path: Path) -> None:
    events = [event(CANON, weight=str(i + 1)) for i in range(5)]
    text = document(events)
    data = text.encode()
    cut = data.index(b"</event>", data.index(b"<event>") + 100) - 20  # mid event 0
    cut2 = len(data) - 30
    blob = gzip.compress(data[:cut]) + gzip.compress(data[cut:cut2]) + gzip.compress(data[cut2:])
    path = write(tmp_path, "multi.lhe.gz", blob)
    table = obs_table(path)
    assert col(table, "event") == [0, 1, 2, 3, 4]
    assert col(table, "w") == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert_particles(particle_table(path), [CANON] * 5)


def test_multi_member_gzip_error_line_counts_across_members(tmp_path: Path) -> None:
    events = [event(CANON) for _ in range(3)]
    bad = list(CANON)
    bad[5] = (11, 1, 1, 2, 0, 0, "*****", 0, 0, 40, 0, 0, 9)
    events.append(event(bad))
    text = document(events)
    data = text.encode()
    mid = len(data) // 3
    path = write(
        tmp_path,
        "multi_bad.lhe.gz",
        gzip.compress(data[:mid]) + gzip.compress(data[mid:]),
    )
    with pytest.raises(vbsad_batch.LheParseError) as excinfo:
        obs_table(path)
    assert excinfo.value.line == line_of(text, "*****")
    assert excinfo.value.event == 3


# --------------------------------------------------------------------------------------
# Malformed input
# --------------------------------------------------------------------------------------


def _stars(text_events: list[list[Particle]]) -> list[str]:
    evs = [event(e) for e in text_events]
    bad = list(CANON)
    bad[9] = (2, 1, 1, 2, 503, 0, 0, "*****", 80, 100, 0, 0, 9)
    evs[1] = event(bad)
    return evs


def case_stars() -> tuple[str, str, int]:
    """Fortran overflow field in a particle line of event 1."""
    text = document(_stars([CANON, CANON, CANON]))
    return text, "*****", 1


def case_too_few_particles() -> tuple[str, str, int]:
    """Event 1 declares NUP = 12 but has 11 particle lines: next line is </event>."""
    evs = [event(CANON), event(CANON, nup=len(CANON) + 1), event(CANON)]
    text = document(evs)
    return text, ("</event>", 2), 1


def case_bad_header_number() -> tuple[str, str, int]:
    """Non-number in the event header line of event 1."""
    head = "11 1 abc 9.1188000E+01 7.5467711E-03 1.1800000E-01"
    text = document([event(CANON), event(CANON, head=head), event(CANON)])
    return text, " abc ", 1


def case_short_particle_line() -> tuple[str, str, int]:
    """A particle line with 12 fields in event 1."""
    bad = list(CANON)
    bad[5] = (11, 1, 1, 2, 0, 0, 40, 0, 0, 40, 0, 0)
    text = document([event(CANON), event(bad), event(CANON)])
    return text, " 11 1 1 2 0 0 40 0 0 40 0 0\n", 1


MALFORMED = {
    "stars": case_stars,
    "too-few-particle-lines": case_too_few_particles,
    "non-number-in-event-header": case_bad_header_number,
    "particle-line-12-fields": case_short_particle_line,
}
READERS = {
    "read_lhe": lambda p, **kw: drain(vbsad_batch.read_lhe, p, **kw),
    "read_lhe_particles": lambda p, **kw: drain(vbsad_batch.read_lhe_particles, p, **kw),
    "lhe_info": vbsad_batch.lhe_info,
}


def _expected_line(text: str, marker) -> int:
    if isinstance(marker, tuple):
        return line_of(text, marker[0], occurrence=marker[1])
    return line_of(text, marker)


def test_lhe_parse_error_is_value_error() -> None:
    assert issubclass(vbsad_batch.LheParseError, ValueError)


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
@pytest.mark.parametrize("reader", list(READERS), ids=list(READERS))
@PLAIN_GZ
def test_malformed_event_fails_with_location(
    tmp_path: Path, case: str, reader: str, gz: bool
) -> None:
    text, marker, bad_event = MALFORMED[case]()
    name = "bad.lhe" + (".gz" if gz else "")
    path = write(tmp_path, name, text, gz=gz)
    with pytest.raises(vbsad_batch.LheParseError) as excinfo:
        READERS[reader](str(path))
    err = excinfo.value
    assert isinstance(err, ValueError)
    assert err.path == str(path)
    assert err.line == _expected_line(text, marker), str(err)
    assert err.event == bad_event, str(err)
    assert name in str(err)


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
@pytest.mark.parametrize("reader", ["read_lhe", "read_lhe_particles"])
def test_malformed_event_through_arrow_c_stream(tmp_path: Path, case: str, reader: str) -> None:
    """Consumers of __arrow_c_stream__ (pa.table) get a ValueError with the location.

    The Arrow C stream interface carries only a message, so the error type seen by
    pyarrow's importer is its own (ArrowInvalid, a ValueError); the message must still
    name file, line and event.
    """
    text, marker, bad_event = MALFORMED[case]()
    path = write(tmp_path, "cstream.lhe", text)
    stream = getattr(vbsad_batch, reader)(str(path))
    line = _expected_line(text, marker)
    with pytest.raises(ValueError, match=rf"cstream\.lhe:{line}: event {bad_event}:"):
        pa.table(stream)


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
@PLAIN_GZ
def test_malformed_event_skipped(tmp_path: Path, case: str, gz: bool) -> None:
    text, marker, bad_event = MALFORMED[case]()
    path = write(tmp_path, "skip.lhe" + (".gz" if gz else ""), text, gz=gz)
    line = _expected_line(text, marker)
    stream = vbsad_batch.read_lhe(str(path), on_error="skip")
    table = pa.table(stream)
    assert col(table, "event") == [0, 2]  # good events before AND after
    assert_canon_row(table, 1, event_index=2)
    parts = particle_table(path, on_error="skip")
    assert sorted(set(col(parts, "event"))) == [0, 2]
    assert_particles(parts.filter(pc.equal(parts["event"], 0)), [CANON])
    for info in (stream.info(), vbsad_batch.lhe_info(str(path), on_error="skip")):
        assert info.n_skipped == 1
        assert len(info.skipped) == 1
        entry = info.skipped[0]
        assert entry["event"] == bad_event
        assert entry["line"] == line
        assert isinstance(entry["message"], str)
        assert entry["message"]
        assert info.n_rows == 2


def _unterminated_mid_line() -> tuple[str, int]:
    """File ends inside a particle line of event 2 (no newline, no </event>)."""
    text = document([event(CANON), event(CANON), event(CANON)], trailer="")
    cut = text.rindex(" 2 1 1 2 503 0 0 -60") + 12
    return text[:cut], 2


def _unterminated_after_particles() -> tuple[str, int]:
    """File ends after the complete particle lines of event 2 (no </event>)."""
    text = document([event(CANON), event(CANON), event(CANON)], trailer="")
    cut = text.rindex("</event>")
    return text[:cut], 2


@PLAIN_GZ
@pytest.mark.parametrize("reader", list(READERS), ids=list(READERS))
def test_unterminated_event_mid_line(tmp_path: Path, reader: str, gz: bool) -> None:
    text, bad_event = _unterminated_mid_line()
    name = "cut.lhe" + (".gz" if gz else "")
    path = write(tmp_path, name, text, gz=gz)
    with pytest.raises(vbsad_batch.LheParseError) as excinfo:
        READERS[reader](str(path))
    err = excinfo.value
    assert err.path == str(path)
    assert err.event == bad_event, str(err)
    # the offending line is the truncated last line of the file
    assert err.line == text.count("\n") + 1, str(err)
    assert name in str(err)


@PLAIN_GZ
def test_unterminated_event_after_particles(tmp_path: Path, gz: bool) -> None:
    text, bad_event = _unterminated_after_particles()
    name = "cut2.lhe" + (".gz" if gz else "")
    path = write(tmp_path, name, text, gz=gz)
    with pytest.raises(vbsad_batch.LheParseError) as excinfo:
        obs_table(path)
    err = excinfo.value
    assert err.event == bad_event, str(err)
    # the text ends with a newline after the last particle line: the error is at the
    # end of the text, i.e. on the last line or the (empty) line after it
    n_lines = text.count("\n")
    assert err.line in (n_lines, n_lines + 1), str(err)
    assert name in str(err)


@PLAIN_GZ
@pytest.mark.parametrize(
    "make",
    [_unterminated_mid_line, _unterminated_after_particles],
    ids=["mid", "after"],
)
def test_unterminated_event_skipped_is_reported(tmp_path: Path, make, gz: bool) -> None:
    text, bad_event = make()
    path = write(tmp_path, "cut3.lhe" + (".gz" if gz else ""), text, gz=gz)
    stream = vbsad_batch.read_lhe(str(path), on_error="skip")
    table = pa.table(stream)
    assert col(table, "event") == [0, 1]
    for info in (stream.info(), vbsad_batch.lhe_info(str(path), on_error="skip")):
        assert info.n_skipped == 1
        assert info.skipped[0]["event"] == bad_event
        assert info.skipped[0]["line"] in (text.count("\n"), text.count("\n") + 1)


def _truncated_gzip(source: Path) -> tuple[bytes, str]:
    """Cut a real gzip file roughly in half, inside a particle line.

    Returns the cut bytes and the text a decoder can recover from them.
    """
    data = source.read_bytes()
    cut = len(data) // 2
    while True:
        partial = zlib.decompressobj(wbits=31).decompress(data[:cut])
        text = partial.decode()
        last_open = text.rfind("<event>")
        last_line = text[text.rfind("\n") + 1 :]
        inside = last_open > text.rfind("</event>")
        stripped = last_line.lstrip()
        # the last line must be a partial particle line, not the event header line
        is_particle = stripped and not stripped.startswith(("<", "#"))
        if inside and is_particle and text.count("\n", last_open) >= 3:
            return data[:cut], text
        cut += 97


@pytest.fixture(scope="module")
def truncated_gzip() -> tuple[Path, bytes, str]:
    source = SSWW_DIR / "ssww_SM.lhe.gz"
    if not source.exists():
        pytest.skip(f"{source} missing")
    data, text = _truncated_gzip(source)
    return source, data, text


@pytest.mark.parametrize("reader", list(READERS), ids=list(READERS))
def test_truncated_gzip_fails_with_location(tmp_path: Path, truncated_gzip, reader) -> None:
    _, data, text = truncated_gzip
    path = write(tmp_path, "half.lhe.gz", data)
    with pytest.raises(vbsad_batch.LheParseError) as excinfo:
        READERS[reader](str(path))
    err = excinfo.value
    assert err.path == str(path)
    assert err.event == text.count("<event>") - 1, str(err)
    assert err.line == text.count("\n") + 1, str(err)
    assert "half.lhe.gz" in str(err)


def test_truncated_gzip_skip_reports_truncation(tmp_path: Path, truncated_gzip) -> None:
    _, data, text = truncated_gzip
    n_complete = text.count("</event>")
    path = write(tmp_path, "half.lhe.gz", data)
    stream = vbsad_batch.read_lhe(str(path), on_error="skip")
    table = pa.table(stream)
    # every SSWW event has two leptons and two jets
    assert col(table, "event") == list(range(n_complete))
    info = stream.info()
    assert info.n_skipped == 1
    assert info.skipped[0]["event"] == n_complete
    assert info.skipped[0]["line"] == text.count("\n") + 1


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.lhe", b"")
    for reader in READERS.values():
        with pytest.raises(vbsad_batch.LheParseError) as excinfo:
            reader(str(path))
        assert excinfo.value.path == str(path)
        assert "empty.lhe" in str(excinfo.value)


def test_empty_gzip_file_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.lhe.gz", b"", gz=True)
    with pytest.raises(vbsad_batch.LheParseError) as excinfo:
        obs_table(path)
    assert "empty.lhe.gz" in str(excinfo.value)


def test_missing_init_is_a_clear_error(tmp_path: Path) -> None:
    text = document([event(CANON)], init="")
    path = write(tmp_path, "noinit.lhe", text)
    for reader in READERS.values():
        with pytest.raises(vbsad_batch.LheParseError) as excinfo:
            reader(str(path))
        assert "noinit.lhe" in str(excinfo.value)
        assert "init" in str(excinfo.value).lower()
        assert excinfo.value.event is None


def test_missing_file() -> None:
    for reader in READERS.values():
        with pytest.raises(FileNotFoundError):
            reader("/nonexistent/dir/file.lhe")


def test_invalid_on_error_value(tmp_path: Path) -> None:
    path = write(tmp_path, "ok.lhe", document([event(CANON)]))
    with pytest.raises(ValueError, match="on_error"):
        obs_table(path, on_error="ignore")


# --------------------------------------------------------------------------------------
# Random mutations of a small real file never crash
# --------------------------------------------------------------------------------------

SMALL_REAL = LHE_DIR / "pylhe-testfile-powheg-box-v2-hvq.lhe"
INTERESTING = b"<>/ \n\r\t*0123456789.eEdD+-#!=\"'\x00\xff"

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7)),
    st.tuples(
        st.just("insert"),
        st.integers(0, 1 << 20),
        st.one_of(st.sampled_from(list(INTERESTING)), st.integers(0, 255)),
    ),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 4)),
)


def _mutate(data: bytes, ops, truncate_at) -> bytes:
    buf = bytearray(data)
    for op, raw_pos, arg in ops:
        if not buf:
            break
        pos = raw_pos % len(buf)
        if op == "flip":
            buf[pos] ^= 1 << arg
        elif op == "insert":
            buf.insert(pos, arg)
        else:
            del buf[pos : pos + arg]
    if truncate_at is not None and buf:
        del buf[truncate_at % len(buf) :]
    return bytes(buf)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(mutation, min_size=0, max_size=4),
    truncate_at=st.one_of(st.none(), st.integers(0, 1 << 20)),
    compression=st.sampled_from(["plain", "gzip-after", "gzip-before"]),
    on_error=st.sampled_from(["fail", "skip"]),
)
def test_random_mutations_never_crash(fuzz_dir: Path, ops, truncate_at, compression, on_error):
    if not SMALL_REAL.exists():
        pytest.skip(f"{SMALL_REAL} missing")
    data = SMALL_REAL.read_bytes()
    if compression == "gzip-before":  # corrupt the compressed stream itself
        data = _mutate(gzip.compress(data, mtime=0), ops, truncate_at)
    else:
        data = _mutate(data, ops, truncate_at)
        if compression == "gzip-after":
            data = gzip.compress(data, mtime=0)
    path = fuzz_dir / "mutant.lhe"
    path.write_bytes(data)
    for name, reader in READERS.items():
        try:
            result = reader(str(path), on_error=on_error)
        except (vbsad_batch.LheParseError, OSError):
            continue
        if name == "lhe_info":
            assert result.n_events >= 0
        else:
            assert isinstance(result, pa.Table)
