"""The embedded demo's samples in MadGraph LHE format: `write_demo_lhe`, `generate_demo`.

The file layout follows MadGraph5_aMC@NLO 3.x with the reweighting module: a ``<header>``
with ``<MGVersion>``, ``<MG5ProcCard>``, ``<MGRunCard>``, ``<slha>``, ``<initrwgt>`` and
``<MGGenerationInfo>``, an ``<init>`` block, then events with MadGraph's column layout and
an ``<rwgt>`` block of ``<wgt id='...'>`` weights. Units: GeV for energies, momenta and
masses; pb for cross sections and weights (``event_norm = average``: every event's nominal
weight equals the sample cross section). The events are the toys of
`vbsad_batch.demo.toy_events`: for demonstration and testing, not a physics generator.
"""

from __future__ import annotations

import concurrent.futures as cf
import gzip as _gzip
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np

from vbsad_batch.demo.eft_response import (
    LAMBDA_GEV,
    TOY_EFT_RESPONSE,
    toy_eft_lin,
    toy_eft_quad,
    toy_eft_ratio,
)
from vbsad_batch.demo.toy_events import (
    ALPHA_EM,
    BEAM_ENERGY_GEV,
    BW_CUTOFF,
    COMPONENTS,
    CUT_DR,
    CUT_ETAJ,
    CUT_ETAL,
    CUT_MJJ,
    CUT_PTJ,
    CUT_PTL,
    DEFAULT_OPERATORS,
    DYN_SCALES,
    LHAPDF_ID,
    MAX_EXTRA_WEIGHTS,
    MG_VERSION,
    N_PARTICLES,
    N_PDF_MEMBERS,
    REWEIGHT_POINTS,
    W_MASS_GEV,
    W_WIDTH_GEV,
    Z_MASS_GEV,
    Component,
    EventChunk,
    FloatArray,
    SampleSpec,
    check_component,
    check_operators,
    component_cross_section,
    demo_weight_ids,
    event_weights,
    generate_chunk,
    nominal_weights,
    scale_variations,
)
from vbsad_batch.runtime.atomic_write import atomic_path
from vbsad_batch.runtime.cpus import usable_cores

__all__ = [
    "DEFAULT_OPERATORS",
    "DEMO_LHE_NAME",
    "DEMO_PARALLEL_EVENTS",
    "DEMO_SCALE_WEIGHTS",
    "TOY_EFT_RESPONSE",
    "demo_weight_ids",
    "generate_demo",
    "sample_name",
    "toy_eft_lin",
    "toy_eft_quad",
    "toy_eft_ratio",
    "write_demo_lhe",
]

logger = logging.getLogger(__name__)

#: File name written by :func:`generate_demo`.
DEMO_LHE_NAME = "ssww_demo.lhe.gz"

_CHUNK_EVENTS = 8192  # events generated and formatted at a time (fixed: output depends on it)

# --- formatting ---------------------------------------------------------------------------------

_PARTICLE_FMT = "%9d %2d %4d %4d %4d %4d %+17.10e %+17.10e %+17.10e %16.10e %16.10e %10.4e %10.4e\n"
_STATUS = np.array([-1.0, -1.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
_MOTHER1 = np.array([0.0, 0.0, 1.0, 1.0, 4.0, 4.0, 3.0, 3.0, 1.0, 1.0])
_MOTHER2 = np.array([0.0, 0.0, 2.0, 2.0, 4.0, 4.0, 3.0, 3.0, 2.0, 2.0])


def _event_template(weight_ids: Sequence[str]) -> str:
    parts = ["<event>\n%2d %6d %+13.7e %14.8e %14.8e %14.8e\n"]
    parts.extend([_PARTICLE_FMT] * N_PARTICLES)
    if weight_ids:
        parts.append("<rwgt>\n")
        parts.extend(f"<wgt id='{wid.replace('%', '%%')}'> %+.7e </wgt>\n" for wid in weight_ids)
        parts.append("</rwgt>\n")
    parts.append("</event>\n")
    return "".join(parts)


def _chunk_rows(chunk: EventChunk, nominal: FloatArray, weights: FloatArray) -> FloatArray:
    n = chunk.scale.shape[0]
    head = np.empty((n, 6))
    head[:, 0] = N_PARTICLES
    head[:, 1] = 1.0
    head[:, 2] = nominal
    head[:, 3] = chunk.scale
    head[:, 4] = ALPHA_EM
    head[:, 5] = chunk.aqcd
    shape = (n, N_PARTICLES)
    particles = np.stack(
        [
            chunk.pid,
            np.broadcast_to(_STATUS, shape),
            np.broadcast_to(_MOTHER1, shape),
            np.broadcast_to(_MOTHER2, shape),
            chunk.col1,
            chunk.col2,
            chunk.p[..., 0],
            chunk.p[..., 1],
            chunk.p[..., 2],
            chunk.p[..., 3],
            chunk.mass,
            np.zeros(shape),
            chunk.spin,
        ],
        axis=-1,
    ).reshape(n, N_PARTICLES * 13)
    return np.concatenate([head, particles, weights], axis=1)


_PROCESS_ORDERS: dict[Component, str] = {
    "sm": "NP=0",
    "lin": "NP=1 NP^2==1",
    "quad": "NP=1 NP^2==2",
}


def sample_name(component: Component, operator: str | None = None) -> str:
    """Base name of a demo sample: ``ssww_demo`` (SM) or ``ssww_demo_<op>_LIN`` / ``_QUAD``."""
    if component == "sm" or operator is None:
        return "ssww_demo"
    return f"ssww_demo_{operator}_{component.upper()}"


def _header(spec: SampleSpec) -> str:
    n_events, seed, ops = spec.n_events, spec.seed, list(spec.operators)
    extra_weights, component, operator = spec.extra_weights, spec.component, spec.operator
    xs = component_cross_section(component, operator)
    coefficients = {op: (1.0 if op == operator else 0.0) for op in ops}
    lines = [
        '<LesHouchesEvents version="3.0">',
        "<header>",
        "<!--",
        "# Toy same-sign W+W+ scattering sample written by vbsad_batch.demo for demonstration",
        "# and testing. It imitates the layout of MadGraph5_aMC@NLO output with the reweighting",
        "# module; it is NOT MadGraph output and NOT a physics prediction (no matrix element).",
        "-->",
        "<MGVersion>",
        f"#{MG_VERSION}",
        "</MGVersion>",
        "<MG5ProcCard>",
        "<![CDATA[",
        "# toy process card (vbsad_batch demo)",
        "import model SMEFTsim_U35_MwScheme_UFO",
        "define p = g u c d s u~ c~ d~ s~",
        "define j = g u c d s u~ c~ d~ s~",
        f"generate p p > e+ ve mu+ vm j j QCD=0 SMHLOOP=0 {_PROCESS_ORDERS[component]}",
        f"output {sample_name(component, operator)}",
        "]]>",
        "</MG5ProcCard>",
        "<MGRunCard>",
        "<![CDATA[",
        "# toy run card (vbsad_batch demo)",
        f"  {n_events} = nevents ! number of unweighted events",
        f"  {seed} = iseed ! random seed",
        "  1 = lpp1 ! proton beam",
        "  1 = lpp2 ! proton beam",
        f"  {BEAM_ENERGY_GEV} = ebeam1 ! beam 1 energy in GeV",
        f"  {BEAM_ENERGY_GEV} = ebeam2 ! beam 2 energy in GeV",
        "  lhapdf = pdlabel ! PDF set",
        f"  {LHAPDF_ID} = lhaid ! PDF set id",
        "  average = event_norm ! event weight normalisation",
        "  3 = dynamical_scale_choice ! HT/2",
        f"  {CUT_PTJ} = ptj ! minimum jet pt",
        f"  {CUT_ETAJ} = etaj ! maximum jet |eta|",
        f"  {CUT_MJJ} = mmjj ! minimum dijet mass",
        f"  {CUT_PTL} = ptl ! minimum charged lepton pt",
        f"  {CUT_ETAL} = etal ! maximum charged lepton |eta|",
        f"  {CUT_DR} = drjj ! minimum jet-jet distance",
        f"  {CUT_DR} = drll ! minimum lepton-lepton distance",
        f"  {CUT_DR} = drjl ! minimum jet-lepton distance",
        f"  {BW_CUTOFF} = bwcutoff ! Breit-Wigner cutoff in widths",
        "]]>",
        "</MGRunCard>",
        "<slha>",
        "BLOCK MASS #",
        f"   24 {W_MASS_GEV:.6e} # MW",
        f"   23 {Z_MASS_GEV:.6e} # MZ",
        "BLOCK SMEFTCUTOFF #",
        f"    1 {LAMBDA_GEV:.6e} # Lambda",
        "BLOCK SMEFT #",
    ]
    lines.extend(f"  {i + 1:3d} {coefficients[op]:.6e} # {op}" for i, op in enumerate(ops))
    lines.append(f"DECAY  24 {W_WIDTH_GEV:.6e} # WW")
    lines.append("</slha>")
    if extra_weights or component == "sm":
        lines.append("<initrwgt>")
    if extra_weights:
        lines.extend(_systematics_initrwgt(extra_weights))
    if component == "sm":
        lines.append(
            "<weightgroup name='mg_reweighting' weight_name_strategy='includeIdInWeightName'>"
        )
        first = ops[0] if ops else "cW"
        lines.append(f"<weight id='sm'> set param_card {first} 0.0 # orig: 0.0 </weight>")
        for op in ops:
            for suffix, c in REWEIGHT_POINTS:
                lines.append(
                    f"<weight id='{op}_{suffix}'> set param_card {op} {c:.1f} # orig: 0.0 </weight>"
                )
        lines.append("</weightgroup>")
    if extra_weights or component == "sm":
        lines.append("</initrwgt>")
    lines.append("<MGGenerationInfo>")
    lines.append(f"#  Number of Events        :       {n_events}")
    lines.append(f"#  Integrated weight (pb)  :       {xs.xsec_pb!r}")
    lines.append("</MGGenerationInfo>")
    lines.append("</header>")
    lines.append("<init>")
    lines.append(
        f"2212 2212 {BEAM_ENERGY_GEV:e} {BEAM_ENERGY_GEV:e} 0 0 {LHAPDF_ID} {LHAPDF_ID} -4 1"
    )
    lines.append(f"{xs.xsec_pb:e} {xs.error_pb:e} {xs.abs_pb:e} 1")
    lines.append(
        f"<generator name='MadGraph5_aMC@NLO' version='{MG_VERSION}'>please cite 1405.0301 "
        "</generator>"
    )
    lines.append("</init>")
    return "\n".join(lines) + "\n"


def _systematics_initrwgt(extra_weights: int) -> list[str]:
    lines = ['<weightgroup name="Central scale variation" combine="envelope">']
    dyn_names = dict(DYN_SCALES)
    k = 0
    for mur, muf, dyn in scale_variations():
        if k == extra_weights:
            break
        k += 1
        attrs = f'MUR="{mur:.1f}"  MUF="{muf:.1f}"  '
        label = (f"MUR={mur:.1f} " if mur != 1.0 else "") + (
            f"MUF={muf:.1f} " if muf != 1.0 else ""
        )
        if dyn is not None:
            attrs += f'DYN_SCALE="{dyn}"  '
            label += f"dyn_scale_choice={dyn_names[dyn]} "
        lines.append(f'<weight id="{k}" {attrs}PDF="{LHAPDF_ID}" > {label} </weight>')
    lines.append("</weightgroup> # scale")
    if k < extra_weights:
        lines.append(
            f'<weightgroup name="NNPDF23_lo_as_0130_qed" combine="replicas"> # {LHAPDF_ID}: '
            "toy replicas"
        )
        member = 0
        while k < extra_weights:
            k += 1
            label = f"PDF={LHAPDF_ID} MemberID={member}" if member else ""
            lines.append(
                f'<weight id="{k}" MUR="1.0"  MUF="1.0"  PDF="{LHAPDF_ID + member}" > '
                f"{label} </weight>"
            )
            member += 1
        lines.append("</weightgroup>")
    return lines


def _iter_text(spec: SampleSpec) -> Iterator[str]:
    yield _header(spec)
    seed, component, operator = spec.seed, spec.component, spec.operator
    # Independent streams: kinematics do not depend on the weights requested; every
    # (component, operator) sample has its own stream.
    stream = (
        [seed, 0]
        if component == "sm" or operator is None
        else [
            seed,
            1 + COMPONENTS.index(component),
            *operator.encode("ascii"),
        ]
    )
    rng = np.random.default_rng(stream)
    pdf_shifts = np.random.default_rng([seed, 1]).normal(0.0, [0.02, 0.01], size=(N_PDF_MEMBERS, 2))
    pdf_shifts[0] = 0.0  # member 0: central set
    ids = demo_weight_ids(spec.operators, extra_weights=spec.extra_weights, component=component)
    template = _event_template(ids)
    done = 0
    while done < spec.n_events:
        n = min(_CHUNK_EVENTS, spec.n_events - done)
        chunk = generate_chunk(rng, n, component, operator)
        nominal = nominal_weights(chunk, component, operator)
        weights = event_weights(chunk, nominal, spec, pdf_shifts)
        rows = _chunk_rows(chunk, nominal, weights)
        yield "".join([template % tuple(row) for row in rows.tolist()])
        done += n
    yield "</LesHouchesEvents>\n"


# --- public API -----------------------------------------------------------------------------------


def write_demo_lhe(
    path: Path,
    *,
    n_events: int,
    seed: int,
    operators: Sequence[str] = DEFAULT_OPERATORS,
    gzip: bool | None = None,
    extra_weights: int = 0,
    component: Component = "sm",
    operator: str | None = None,
) -> Path:
    """Write one toy SSWW sample in MadGraph LHE format; return the path written.

    Toy data for demonstration and testing, not a physics generator. Deterministic: the
    same arguments give a byte-identical file. The file is written to a temporary file in
    the destination directory and renamed into place, so a failure never leaves a partial
    file at ``path``.

    Args:
        path: Destination file.
        n_events: Number of events (>= 0).
        seed: Random seed (non-negative integer).
        operators: EFT operator names of the model; the SM sample gets reweighting weights
            ``<op>_m1`` and ``<op>_p1`` (c = -1, +1) for each, besides ``sm`` (c = 0).
        gzip: Compress with gzip; ``None`` decides from a ``.gz`` suffix.
        extra_weights: Number of additional scale/PDF-like weights (0..MAX_EXTRA_WEIGHTS),
            written first, e.g. to benchmark files with ~100 weights.
        component: ``"sm"``, or ``"lin"`` / ``"quad"``: events drawn from the interference or
            the squared term of ``operator`` at c = 1 (LIN weights are negative where the
            interference is), as MadGraph writes ``NP^2==1`` / ``NP^2==2`` samples.
        operator: The operator of a LIN or QUAD sample (one of ``operators``).
    """
    path = Path(path)
    if isinstance(n_events, bool) or not isinstance(n_events, int) or n_events < 0:
        raise ValueError(f"n_events must be a non-negative integer, got {n_events!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 <= extra_weights <= MAX_EXTRA_WEIGHTS:
        raise ValueError(f"extra_weights must be in [0, {MAX_EXTRA_WEIGHTS}], got {extra_weights}")
    ops = check_operators(operators)
    check_component(component, operator, ops)
    compress = path.suffix == ".gz" if gzip is None else gzip
    spec = SampleSpec(n_events, seed, tuple(ops), extra_weights, component, operator)

    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        if compress:
            # mtime=0 and no file name in the gzip header: reproducible bytes.
            with _gzip.GzipFile(
                filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0
            ) as gz:
                _write_all(gz, spec)
        else:
            _write_all(raw, spec)
    return path


def _write_all(out: BinaryIO | _gzip.GzipFile, spec: SampleSpec) -> None:
    for text in _iter_text(spec):
        out.write(text.encode("ascii"))


#: Scale-variation weights written into every file of :func:`generate_demo`.
DEMO_SCALE_WEIGHTS = 8


DEMO_PARALLEL_EVENTS = 20_000
"""Events of the demo set from which `generate_demo` writes its files in parallel: below, a
worker's start-up (~0.3 s) would cost more than it saves."""


def generate_demo(
    output_dir: Path,
    *,
    n_events: int = 5000,
    eft_events: int | None = None,
    seed: int = 1,
    operators: Sequence[str] = DEFAULT_OPERATORS,
    eft_samples: bool = True,
    progress: Callable[[Path, int, float], None] | None = None,
    processes: int | None = None,
) -> list[Path]:
    """Write the embedded demo data set into ``output_dir``; return the files written.

    Toy for demonstration and testing, not a physics generator. Units: GeV, pb.

    * ``ssww_demo.lhe.gz``: ``n_events`` SM events with MadGraph-style reweighting weights
      ``sm`` and ``<op>_m1`` / ``<op>_p1`` (c = -1, +1) for each operator;
    * with ``eft_samples``, per operator ``ssww_demo_<op>_LIN.lhe.gz`` and
      ``ssww_demo_<op>_QUAD.lhe.gz``: ``eft_events`` (default ``n_events // 2``) events of the
      interference and of the squared term at c = 1, as separately generated samples.

    Every file also has :data:`DEMO_SCALE_WEIGHTS` scale-variation weights. ``progress`` is
    called with each file, its number of events and the seconds its writing took, once the
    file is written, in the order of the list returned. The files are written by up to
    ``processes`` worker processes at once (None: one per usable core,
    `vbsad_batch.runtime.cpus.usable_cores`; one process below `DEMO_PARALLEL_EVENTS` events
    in all); each file's bytes do not depend on it.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ops = check_operators(operators)
    n_eft = n_events // 2 if eft_events is None else eft_events
    jobs: list[tuple[Component, str | None, int]] = [("sm", None, n_events)]
    if eft_samples:
        jobs += [(comp, op, n_eft) for op in ops for comp in ("lin", "quad")]
    writes = [
        partial(
            write_demo_lhe,
            output_dir / f"{sample_name(component, operator)}.lhe.gz",
            n_events=n,
            seed=seed,
            operators=ops,
            extra_weights=DEMO_SCALE_WEIGHTS,
            component=component,
            operator=operator,
        )
        for component, operator, n in jobs
    ]
    if processes is None:
        big = sum(n for _, _, n in jobs) >= DEMO_PARALLEL_EVENTS
        processes = usable_cores() if big else 1
    written = []
    timed = [partial(_timed, write) for write in writes]
    for (path, seconds), (_, _, n) in zip(_written_files(timed, processes), jobs, strict=True):
        written.append(path)
        if progress is not None:
            progress(path, n, seconds)
    return written


def _timed(write: Callable[[], Path]) -> tuple[Path, float]:
    """`write()` and the seconds it took (wall clock, where it ran)."""
    start = time.monotonic()
    return write(), time.monotonic() - start


def _written_files(
    writes: Sequence[Callable[[], tuple[Path, float]]], processes: int
) -> Iterator[tuple[Path, float]]:
    """Run `writes` (the first is the largest: it starts first) by up to `processes` worker
    processes, yielding each result (path written, seconds) in the order of `writes`.

    In a daemonic process (which may not start processes), or when the workers cannot start
    (a script that calls this at module level without an ``if __name__ == "__main__":`` guard:
    each spawned worker runs the script again and stops), the files are written here."""
    workers = min(processes, len(writes))
    if workers <= 1 or multiprocessing.current_process().daemon:
        for write in writes:
            yield write()
        return
    pool = cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn")
    )  # spawn: a fresh interpreter, safe with the threads of the caller (polars, progress)
    broken = False
    try:
        futures: list[cf.Future[tuple[Path, float]] | None] = []
        for write in writes:
            try:
                futures.append(pool.submit(write))
            except BrokenProcessPool:  # broken already: the rest are written here
                futures.append(None)
        for write, future in zip(writes, futures, strict=True):
            try:
                if future is None:
                    raise BrokenProcessPool("the pool broke before this file was handed over")
                result = future.result()
            except BrokenProcessPool as exc:
                if not broken:
                    logger.warning(
                        "the demo's worker processes stopped (%s); writing its files in this "
                        "process (a script needs `if __name__ == '__main__':` for them)",
                        exc,
                    )
                broken = True
                result = write()
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
