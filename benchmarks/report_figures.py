"""Benchmark: drawing the report's figures as `vbsad report` draws them (`FigureTask.render`)
versus matplotlib's plain path (`Figure.savefig` of each figure), on the same analysis in one
run, one process.

`render` lays each figure out once and paints it once, on a canvas shared by the figures of
one size (matplotlib's text caches then serve them all), and works each axis's ticks out once
per state (`vbsad_batch.report.figure_tick_updates`). `savefig` runs the figure's layout
engine in a draw of its own, then paints it, each figure on its own canvas. Both give the same
PNG bytes: this is checked for every figure.

The analysis: CONFIG, complete up to the stages whose figures are wanted (e.g. the output of
`make run`: vbsad-output/demo/demo.toml). The two sides alternate `--repeat` times; printed
are each pass's CPU seconds (this process only), the least of each side and their ratio.

    python benchmarks/report_figures.py vbsad-output/demo/demo.toml --repeat 3

The report's whole cost (its processes, inputs and pages) is measured by
`benchmarks/scoring.py --report CONFIG`.

Measured 2026-12-08 (00:28 UTC, at 7d76788) on this project's 2-core machine, idle but for
the benchmark, on the output of `make run` (29 figures): savefig 15.99 / 17.27 / 19.31 CPU s,
render 11.19 / 12.77 / 13.32 CPU s; least CPU 15.99 against 11.19 s, 1.43x; PNG bytes equal
for every figure. (Both sides slow down from pass to pass in one process, by about the same.)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vbsad_batch.config import load_config
from vbsad_batch.report.figures import FigureTask, figure_tasks
from vbsad_batch.report.inputs import find_report_inputs


def timed_pass(tasks: list[FigureTask], plain: bool) -> tuple[float, dict[str, bytes]]:
    """CPU seconds of drawing every task one way, and the PNGs."""
    start = time.process_time()
    pngs = {task.file_name: task.savefig_png() if plain else task.render() for task in tasks}
    return time.process_time() - start, pngs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="analysis config (TOML) of a finished run")
    parser.add_argument("--repeat", type=int, default=3, help="passes of each side (default 3)")
    args = parser.parse_args(argv)

    tasks = figure_tasks(find_report_inputs(load_config(args.config)))
    print(f"{len(tasks)} figures of {args.config}")
    timed_pass(tasks[:1], plain=False)  # imports, fonts and the style's first use: not timed
    times: dict[str, list[float]] = {"savefig": [], "render": []}
    same = True
    for _ in range(args.repeat):
        plain_s, plain = timed_pass(tasks, plain=True)
        render_s, rendered = timed_pass(tasks, plain=False)
        same &= plain == rendered
        times["savefig"].append(plain_s)
        times["render"].append(render_s)
        print(f"  savefig {plain_s:6.2f} CPU s   render {render_s:6.2f} CPU s")
    best = {side: min(values) for side, values in times.items()}
    print(
        f"least CPU: savefig {best['savefig']:.2f} s, render {best['render']:.2f} s, "
        f"ratio {best['savefig'] / best['render']:.2f}x"
    )
    print("PNG bytes equal for every figure:", "yes" if same else "NO")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
