"""Benchmark: LHE ingestion with vbsad_batch.read_lhe versus pylhe + numpy.

One run builds its inputs in a scratch directory and measures, on the same inputs:

* (a) a large unweighted file made by repeating the events of a real MadGraph file
  (pylhe-testfile-madgraph-2.2.1-Z-mlm, header and init once, proper closing tag) and
  (b) a large SSWW-like file from ``vbsad_batch.demo.lhe_writer.write_demo_lhe`` with ~100
  ``<wgt>`` per event, each as plain text and gzip;
* events/s and MB/s (of uncompressed LHE text) of ``vbsad_batch.read_lhe`` fully consumed,
  versus pylhe (``LHEFile.fromfile(path).events`` iterated, observables computed per event with
  numpy). pylhe is slow, so it runs on a prefix of the same content (the first N events
  written to a separate file); rates in events/s are compared;
* gzip decompression alone (Python zlib streaming, and ``gzip -dc > /dev/null``) versus
  vbsad on the gzip file;
* peak memory (VmHWM) of vbsad reading a ~size/10 and a ~size input, each in a fresh process.

A cross-check compares vbsad's observables with the pylhe-based ones on the prefix file.

Usage: python benchmarks/ingest.py [--size-mb 1000] [--scratch DIR] [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pylhe

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import vbsad_batch  # noqa: E402
from vbsad_batch.demo.lhe_writer import DEFAULT_OPERATORS, write_demo_lhe  # noqa: E402
from vbsad_batch.ingest import OBSERVABLE_COLUMNS  # noqa: E402
from vbsad_batch.runtime.atomic_write import atomic_path  # noqa: E402

SHARED_DIR = Path(
    os.environ.get("VBSAD_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")
)
DEFAULT_Z_MLM = SHARED_DIR / "testdata/lhe/pylhe-testfile-madgraph-2.2.1-Z-mlm.lhe.gz"
MB = 1_000_000
CHUNK = 1 << 22

OBSERVABLES = OBSERVABLE_COLUMNS
JET_IDS = (1, 2, 3, 4, 5, 6, 21)
LEPTON_IDS = (11, 13, 15)
NEUTRINO_IDS = (12, 14, 16)


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------


@dataclass
class Input:
    """One benchmark input family: big file, pylhe prefix, and memory-test files."""

    name: str
    plain: Path
    gz: Path
    n_events: int
    prefix_plain: Path
    prefix_gz: Path
    prefix_events: int
    memory_files: list[Path] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.plain.stat().st_size


def _atomic_write(path: Path, writer: Callable[[Any], None], binary: bool = True) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w") as f:
        writer(f)


def gzip_file(src: Path, dst: Path, level: int = 6) -> Path:
    """Compress src to dst (streaming, reproducible gzip header)."""
    if dst.exists():
        return dst

    def write(raw: Any) -> None:
        with (
            open(src, "rb") as fin,
            gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0) as gz,
        ):
            shutil.copyfileobj(fin, gz, CHUNK)

    _atomic_write(dst, write)
    return dst


def _split_lhe(text: str) -> tuple[str, str]:
    """(preamble up to the first event, event blocks through the last </event>)."""
    start = text.index("<event")
    end = text.rindex("</event>") + len("</event>\n")
    return text[:start], text[start:end]


def build_repeated(src_gz: Path, dst: Path, target_bytes: int) -> int:
    """Repeat the events of a real LHE file until dst reaches target_bytes; return events."""
    text = gzip.decompress(src_gz.read_bytes()).decode("utf-8")
    preamble, body = _split_lhe(text)
    per_copy = body.count("<event")
    copies = max(1, math.ceil((target_bytes - len(preamble)) / len(body)))
    if not dst.exists():
        data = body.encode("utf-8")

        def write(f: Any) -> None:
            f.write(preamble.encode("utf-8"))
            for _ in range(copies):
                f.write(data)
            f.write(b"</LesHouchesEvents>\n")

        _atomic_write(dst, write)
    return per_copy * copies


def iter_event_blocks(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Yield ("pre", lines) once, then ("event", lines) per event; plain files only."""
    with open(path, encoding="utf-8") as f:
        pre: list[str] = []
        block: list[str] | None = None
        for line in f:
            if block is None:
                if line.startswith("<event"):
                    yield "pre", pre
                    block = [line]
                else:
                    pre.append(line)
                continue
            if block:
                block.append(line)
                if line.startswith("</event>"):
                    yield "event", block
                    block = []
            elif line.startswith("<event"):
                block = [line]


def write_prefix(
    src: Path, dst: Path, *, max_events: int | None = None, max_bytes: int | None = None
) -> int:
    """Copy the header and the first events of src (plain) to dst; return events written."""
    count = 0
    if dst.exists():
        with open(dst, encoding="utf-8") as f:
            return sum(1 for line in f if line.startswith("<event"))

    def write(f: Any) -> None:
        nonlocal count
        written = 0
        for kind, lines in iter_event_blocks(src):
            chunk = "".join(lines)
            f.write(chunk)
            written += len(chunk)
            if kind == "event":
                count += 1
                if max_events is not None and count >= max_events:
                    break
                if max_bytes is not None and written >= max_bytes:
                    break
        f.write("</LesHouchesEvents>\n")

    _atomic_write(dst, write, binary=False)
    return count


def build_ssww(dst: Path, target_bytes: int, n_weights: int, seed: int) -> int:
    """Toy SSWW file with n_weights <wgt> per event, about target_bytes; return events."""
    extra = n_weights - 1 - 2 * len(DEFAULT_OPERATORS)
    if extra < 0:
        raise SystemExit(f"--weights must be >= {1 + 2 * len(DEFAULT_OPERATORS)}")
    calib = dst.with_name(f".calib-{n_weights}.lhe")
    n_cal = 500
    write_demo_lhe(calib, n_events=n_cal, seed=seed, extra_weights=extra)
    n_header = _overhead_bytes(calib)
    per_event = (calib.stat().st_size - n_header) / n_cal
    calib.unlink()
    n_events = max(1, math.ceil((target_bytes - n_header) / per_event))
    if not dst.exists():
        write_demo_lhe(dst, n_events=n_events, seed=seed, extra_weights=extra, gzip=False)
    return n_events


def _overhead_bytes(path: Path) -> int:
    """Bytes of an LHE file that are not events (header, init, closing tag)."""
    data = path.read_bytes()
    return data.index(b"<event>") + len(b"</LesHouchesEvents>\n")


# ----------------------------------------------------------------------------------------------
# the pylhe side: observables computed per event with numpy (DESIGN.md definitions)
# ----------------------------------------------------------------------------------------------


def event_observables(particles: Iterable[Any]) -> tuple[float, ...] | None:
    """The 18 observables of one event from pylhe particles, or None if not selected."""
    arr = np.array([(p.id, p.status, p.px, p.py, p.pz, p.e) for p in particles], dtype=float)
    final = arr[arr[:, 1] == 1]
    aid = np.abs(final[:, 0])
    jets = final[np.isin(aid, JET_IDS)]
    leptons = final[np.isin(aid, LEPTON_IDS)]
    neutrinos = final[np.isin(aid, NEUTRINO_IDS)]
    if len(leptons) < 2 or len(jets) < 2:
        return None

    def pt(v: np.ndarray) -> np.ndarray:
        return np.asarray(np.hypot(v[..., 2], v[..., 3]))

    def leading_two(v: np.ndarray) -> np.ndarray:
        return v[np.argsort(-pt(v), kind="stable")[:2]]

    def mass(v: np.ndarray) -> float:
        m2 = v[5] ** 2 - v[2] ** 2 - v[3] ** 2 - v[4] ** 2
        return float(math.sqrt(max(m2, 0.0)))

    l1, l2 = leading_two(leptons)
    j1, j2 = leading_two(jets)

    def eta(v: np.ndarray) -> float:
        return float(np.arcsinh(v[4] / pt(v)))

    def phi(v: np.ndarray) -> float:
        return float(np.arctan2(v[3], v[2]))

    ll = l1 + l2
    jj = j1 + j2
    nu = neutrinos[:, 2:4].sum(axis=0)
    dphi = abs(phi(j1) - phi(j2))
    if dphi > math.pi:
        dphi = 2.0 * math.pi - dphi
    return (
        mass(ll),
        mass(jj),
        float(pt(l1)),
        float(pt(l2)),
        float(pt(j1)),
        float(pt(j2)),
        float(pt(ll)),
        float(np.hypot(nu[0], nu[1])),
        eta(l1),
        eta(l2),
        eta(j1),
        eta(j2),
        abs(eta(j1) - eta(j2)),
        dphi,
        phi(j1),
        phi(j2),
        phi(l1),
        phi(l2),
    )


@dataclass
class PylheResult:
    seconds: float
    n_events: int
    rows: dict[int, tuple[tuple[float, ...], float, dict[str, float]]]


def run_pylhe(path: Path, keep_rows: bool) -> PylheResult:
    rows: dict[int, tuple[tuple[float, ...], float, dict[str, float]]] = {}
    t0 = time.perf_counter()
    n = 0
    for i, event in enumerate(pylhe.LHEFile.fromfile(str(path)).events):
        obs = event_observables(event.particles)
        if obs is not None and keep_rows:
            rows[i] = (obs, float(event.eventinfo.weight), dict(event.weights))
        n += 1
    return PylheResult(time.perf_counter() - t0, n, rows)


# ----------------------------------------------------------------------------------------------
# the vbsad side
# ----------------------------------------------------------------------------------------------


@dataclass
class VbsadResult:
    seconds: float
    n_events: int
    n_rows: int


def run_vbsad(path: Path) -> VbsadResult:
    t0 = time.perf_counter()
    stream = vbsad_batch.read_lhe(str(path))
    n_rows = 0
    for batch in stream:
        n_rows += batch.num_rows
    info = stream.info()
    return VbsadResult(time.perf_counter() - t0, int(info.n_events), n_rows)


class _HasSeconds(Protocol):
    seconds: float


T = TypeVar("T", bound=_HasSeconds)


def best_of(repeat: int, fn: Callable[[Path], T], path: Path) -> T:
    """The fastest of `repeat` runs of fn(path)."""
    results = [fn(path) for _ in range(max(1, repeat))]
    return min(results, key=lambda r: r.seconds)


def cross_check(prefix: Path, reference: PylheResult) -> list[str]:
    """Compare vbsad's table with the pylhe-based observables; return problems found."""
    table = pa.table(vbsad_batch.read_lhe(str(prefix)))
    problems: list[str] = []
    events = table.column("event").to_numpy()
    if sorted(events.tolist()) != sorted(reference.rows):
        problems.append(
            f"{prefix.name}: selected events differ: vbsad {len(events)} rows, "
            f"pylhe {len(reference.rows)}"
        )
        return problems
    ref = np.array([reference.rows[int(e)][0] for e in events])
    for k, name in enumerate(OBSERVABLES):
        got = table.column(name).to_numpy(zero_copy_only=False)
        bad = ~np.isclose(got, ref[:, k], rtol=1e-9, atol=1e-9)
        if bad.any():
            problems.append(
                f"{prefix.name}: column {name}: {int(bad.sum())} rows differ, max |diff| "
                f"{np.max(np.abs(got - ref[:, k])):.3g}"
            )
    w = table.column("w").to_numpy(zero_copy_only=False)
    wref = np.array([reference.rows[int(e)][1] for e in events])
    if not np.allclose(w, wref, rtol=1e-12, atol=0):
        problems.append(f"{prefix.name}: column w differs")
    first = reference.rows[int(events[0])][2] if len(events) else {}
    for wid in first:
        col = f"w_{wid}"
        if col not in table.column_names:
            problems.append(f"{prefix.name}: missing weight column {col}")
            continue
        got = table.column(col).to_numpy(zero_copy_only=False)
        exp = np.array([reference.rows[int(e)][2][wid] for e in events])
        if not np.allclose(got, exp, rtol=1e-12, atol=0):
            problems.append(f"{prefix.name}: weight column {col} differs")
    return problems


# ----------------------------------------------------------------------------------------------
# decompression and memory
# ----------------------------------------------------------------------------------------------


@dataclass
class Timed:
    seconds: float


def decompress_zlib(path: Path) -> Timed:
    t0 = time.perf_counter()
    d = zlib.decompressobj(wbits=31)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            d.decompress(chunk)
            while d.eof and d.unused_data:  # multi-member gzip
                rest = d.unused_data
                d = zlib.decompressobj(wbits=31)
                d.decompress(rest)
    d.flush()
    return Timed(time.perf_counter() - t0)


def decompress_gzip_cli(path: Path) -> Timed | None:
    exe = shutil.which("gzip")
    if exe is None:
        return None
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run([exe, "-dc", str(path)], stdout=null, check=True)
    return Timed(time.perf_counter() - t0)


_MEMORY_CHILD = r"""
import json, resource, sys, time

def status():
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out

sys.path.insert(0, sys.argv[2])
import vbsad_batch
import pyarrow
before = status()
t0 = time.perf_counter()
stream = vbsad_batch.read_lhe(sys.argv[1], batch_size=int(sys.argv[3]))
rows = 0
for batch in stream:
    rows += batch.num_rows
info = stream.info()
seconds = time.perf_counter() - t0
after = status()
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
maxrss *= 1 if sys.platform == "darwin" else 1024
print(json.dumps({
    "seconds": seconds, "rows": rows, "events": info.n_events,
    "rss_before": before.get("VmRSS"), "hwm_before": before.get("VmHWM"),
    "hwm": after.get("VmHWM", maxrss), "maxrss": maxrss,
}))
"""


MEMORY_BATCH_SIZE = 8192
"""Rows per batch in the memory runs. Memory is bounded by the batch (rows x columns), not the
file: with this size both the small and the large input span many batches, so their peaks
compare like with like (at the default 65536 rows a 100 MB SSWW file is less than one batch)."""


def measure_memory(path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(path), str(ROOT), str(MEMORY_BATCH_SIZE)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ----------------------------------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------------------------------


def fmt_rate(x: float | None, unit: str = "") -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M{unit}"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k{unit}"
    return f"{x:.1f}{unit}"


def fmt_mb_per_s(x: float) -> str:
    """MB/s in full (the 1 GB/s target is read off this column)."""
    return "n/a" if not math.isfinite(x) else f"{x:.1f} MB/s"


def print_table(title: str, header: list[str], rows: list[list[str]], n_left: int = 2) -> None:
    """Print an aligned table: the first n_left columns left-aligned, the others right."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(
            "  ".join(
                c.ljust(w) if i < n_left else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def mb(nbytes: int | float | None) -> str:
    return "n/a" if nbytes is None else f"{nbytes / MB:.1f}"


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--size-mb", type=float, default=1000.0, help="size of the big inputs (uncompressed MB)"
    )
    p.add_argument(
        "--scratch",
        type=Path,
        default=None,
        help="directory for inputs (kept, reused); default: a temp dir, removed",
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes (20 MB inputs, 2000-event pylhe prefix)"
    )
    p.add_argument(
        "--pylhe-events",
        type=int,
        default=None,
        help="events in the pylhe prefix files (default 20000; quick 2000)",
    )
    p.add_argument(
        "--weights", type=int, default=100, help="<wgt> per event in the SSWW-like input"
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="best of N timings for vbsad and decompression (the first also warms the cache)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--z-mlm", type=Path, default=DEFAULT_Z_MLM, help="real MadGraph file to repeat")
    args = p.parse_args(argv)
    if args.quick:
        args.size_mb = min(args.size_mb, 20.0)
        if args.pylhe_events is None:
            args.pylhe_events = 2000
    if args.pylhe_events is None:
        args.pylhe_events = 20000
    return args


def prepare_inputs(args: argparse.Namespace, scratch: Path) -> list[Input]:
    target = int(args.size_mb * MB)
    small_target = max(1, target // 10)
    tag = f"{args.size_mb:g}MB"
    inputs: list[Input] = []

    t0 = time.perf_counter()
    z_plain = scratch / f"zmlm_{tag}.lhe"
    n_z = build_repeated(args.z_mlm, z_plain, target)
    ss_plain = scratch / f"ssww{args.weights}w_{tag}_s{args.seed}.lhe"
    n_ss = build_ssww(ss_plain, target, args.weights, args.seed)
    for name, plain, n in (
        ("Z-mlm x repeat", z_plain, n_z),
        (f"SSWW {args.weights} wgt", ss_plain, n_ss),
    ):
        stem = plain.name.removesuffix(".lhe")
        prefix = scratch / f"{stem}_first{args.pylhe_events}.lhe"
        n_prefix = write_prefix(plain, prefix, max_events=args.pylhe_events)
        small = scratch / f"{stem}_first{small_target // MB}MB.lhe"
        write_prefix(plain, small, max_bytes=small_target)
        inp = Input(
            name=name,
            plain=plain,
            gz=gzip_file(plain, plain.with_suffix(".lhe.gz")),
            n_events=n,
            prefix_plain=prefix,
            prefix_gz=gzip_file(prefix, prefix.with_suffix(".lhe.gz")),
            prefix_events=n_prefix,
        )
        inp.memory_files = [small, gzip_file(small, small.with_suffix(".lhe.gz")), plain, inp.gz]
        inputs.append(inp)
    print(f"inputs ready in {scratch} ({time.perf_counter() - t0:.1f} s)")
    for inp in inputs:
        print(
            f"  {inp.name}: {inp.plain.name} {mb(inp.size)} MB, gz {mb(inp.gz.stat().st_size)} MB, "
            f"{inp.n_events} events; pylhe prefix {inp.prefix_events} events "
            f"({mb(inp.prefix_plain.stat().st_size)} MB)"
        )
    return inputs


def measure_throughput(
    inputs: list[Input], repeat: int, problems: list[str]
) -> tuple[list[list[str]], list[list[str]]]:
    """Rows of the throughput and gzip tables; appends correctness problems found."""
    speed_rows: list[list[str]] = []
    decomp_rows: list[list[str]] = []
    for inp in inputs:
        for fmt, big, prefix in (
            ("plain", inp.plain, inp.prefix_plain),
            ("gzip", inp.gz, inp.prefix_gz),
        ):
            size_big = inp.size
            size_prefix = inp.prefix_plain.stat().st_size
            py = run_pylhe(prefix, keep_rows=fmt == "plain")
            vb = best_of(repeat, run_vbsad, big)
            vb_prefix = best_of(repeat, run_vbsad, prefix)
            if vb.n_events != inp.n_events:
                problems.append(
                    f"{big.name}: vbsad read {vb.n_events} events, expected {inp.n_events}"
                )
            if vb_prefix.n_events != py.n_events:
                problems.append(
                    f"{prefix.name}: vbsad read {vb_prefix.n_events} events, pylhe {py.n_events}"
                )
            if fmt == "plain":
                problems.extend(cross_check(prefix, py))
            vb_rate = vb.n_events / vb.seconds
            py_rate = py.n_events / py.seconds
            speed_rows.append(
                [
                    inp.name,
                    fmt,
                    f"{mb(size_big)} MB, {inp.n_events} ev",
                    f"{vb.seconds:.2f}",
                    fmt_rate(vb_rate, " ev/s"),
                    fmt_mb_per_s(size_big / MB / vb.seconds),
                    fmt_rate(vb_prefix.n_events / vb_prefix.seconds, " ev/s"),
                    f"{py.n_events}",
                    f"{py.seconds:.2f}",
                    fmt_rate(py_rate, " ev/s"),
                    fmt_mb_per_s(size_prefix / MB / py.seconds),
                    f"{vb_rate / py_rate:.1f}x",
                ]
            )
            if fmt == "gzip":
                zl = best_of(repeat, decompress_zlib, big)
                cli = decompress_gzip_cli(big)
                decomp_rows.append(
                    [
                        inp.name,
                        f"{mb(big.stat().st_size)} -> {mb(size_big)} MB",
                        f"{zl.seconds:.2f}",
                        fmt_mb_per_s(size_big / MB / zl.seconds),
                        f"{cli.seconds:.2f}" if cli else "n/a",
                        f"{vb.seconds:.2f}",
                        f"{vb.seconds / zl.seconds:.2f}",
                        f"{vb.seconds / cli.seconds:.2f}" if cli else "n/a",
                    ]
                )
    return speed_rows, decomp_rows


def measure_memory_rows(inputs: list[Input], problems: list[str]) -> list[list[str]]:
    rows: list[list[str]] = []
    for inp in inputs:
        for path in inp.memory_files:
            plain = path.with_suffix("") if path.suffix == ".gz" else path
            r = measure_memory(path)
            if "error" in r:
                rows.append([inp.name, path.name, mb(plain.stat().st_size), "error", "", "", ""])
                problems.append(f"memory run on {path.name} failed: {r['error']}")
                continue
            before = r.get("hwm_before") or 0
            rows.append(
                [
                    inp.name,
                    path.name,
                    mb(plain.stat().st_size),
                    f"{r['seconds']:.2f}",
                    mb(before),
                    mb(r["hwm"]),
                    mb(r["hwm"] - before),
                ]
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    own_scratch = args.scratch is None
    scratch = Path(tempfile.mkdtemp(prefix="vbsad-bench-")) if own_scratch else args.scratch
    scratch.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    try:
        print(
            f"vbsad_batch ingest benchmark: size {args.size_mb:g} MB, pylhe prefix "
            f"{args.pylhe_events} events, repeat {args.repeat}, cpus {os.cpu_count()}, "
            f"vbsad_batch {vbsad_batch.__version__}, pylhe {pylhe.__version__}"
        )
        inputs = prepare_inputs(args, scratch)
        speed_rows, decomp_rows = measure_throughput(inputs, args.repeat, problems)
        mem_rows = measure_memory_rows(inputs, problems)
    finally:
        if own_scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    print_table(
        "Throughput: vbsad.read_lhe on the big file vs pylhe + numpy observables on a prefix of "
        "the same content\n(ratio = vbsad ev/s / pylhe ev/s; MB/s of uncompressed LHE text)",
        [
            "input",
            "fmt",
            "big file",
            "vbsad s",
            "vbsad rate",
            "vbsad MB/s",
            "vbsad on prefix",
            "pylhe events",
            "pylhe s",
            "pylhe rate",
            "pylhe MB/s",
            "ratio",
        ],
        speed_rows,
    )
    print_table(
        "Gzip: decompression alone (Python zlib streaming; gzip -dc > /dev/null) vs vbsad on the "
        "gzip file\n(ratio = vbsad time / decompression time)",
        [
            "input",
            "size",
            "zlib s",
            "zlib MB/s",
            "gzip -dc s",
            "vbsad gz s",
            "vbsad/zlib",
            "vbsad/gzip -dc",
        ],
        decomp_rows,
    )
    print_table(
        f"Peak memory of vbsad.read_lhe (batch_size {MEMORY_BATCH_SIZE}; fresh process per file; "
        "VmHWM, MB; 'import' = high-water "
        "mark after importing, before reading)",
        ["input", "file", "LHE MB", "seconds", "import", "peak", "peak - import"],
        mem_rows,
    )
    print("\nCross-check (vbsad vs pylhe + numpy: observables, weights, event counts):")
    for msg in problems:
        print(f"  MISMATCH {msg}")
    if not problems:
        print("  all agree")
    print(
        "\nNote: pylhe runs on a prefix of each input (the first N events written to a separate "
        "file with the same header), so the ratio compares events/s, not total times."
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
