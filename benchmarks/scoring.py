"""Benchmark: scoring with NumPy (`vbsad_batch.models.numpy_networks`, what `vbsad score` and the
report use) versus TensorFlow (`vbsad_batch.models.networks.scores`, what they used before), on
the same model and the same events in one run; then, with --report, the report's fixed cost.

Printed:
- start-up of a scoring process, each side in a fresh Python process: the imports and the
  model's loading (NumPy: `load_network` of network.npz; TensorFlow: `import tensorflow` and
  `load_model` of model.keras), wall and CPU seconds and the peak resident memory (MB);
- scoring throughput (events/s, best of --repeat runs after one warm-up) on --events events,
  and the largest relative difference between the two sides' scores (mse, kld, score);
- with --report CONFIG: `vbsad report CONFIG --force` in a fresh process, wall and CPU seconds,
  with every figure drawn by this process only (processes=1) and by one process per core (the
  default), and the ratio. The analysis of CONFIG must be complete (e.g. `vbsad run --quick
  --output DIR` makes one: CONFIG is DIR/demo.toml).

The model: --model-dir DIR (a model directory of `vbsad train`, with model.keras and network.npz),
else a VAE+NN built with its initial weights (seed 0: scoring costs the same whatever the
weights). The events: uniform in [0, 1]^n_features (preprocessed inputs of SM training events
lie there), float32, seed 0.

    python benchmarks/scoring.py                                  # 1M events, untrained VAE+NN
    python benchmarks/scoring.py --model-dir out/models/vae_nn_latent3_cW
    python benchmarks/scoring.py --report /tmp/demo/demo.toml     # and the report's fixed cost
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_STARTUP = """
import json, sys, time
start, cpu = time.perf_counter(), time.process_time()
if sys.argv[1] == "numpy":
    from vbsad_batch.models.numpy_networks import load_network
    load_network(sys.argv[2])
else:
    from vbsad_batch.models.tensorflow_import import import_tensorflow_quietly
    import_tensorflow_quietly()
    from vbsad_batch.models.networks import load_model
    load_model(sys.argv[2])
# VmHWM: this process's peak RSS (getrusage's ru_maxrss would include the parent's before exec)
with open("/proc/self/status") as status:
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({
    "wall": time.perf_counter() - start, "cpu": time.process_time() - cpu, "rss_mb": hwm / 1024,
}))
"""

_REPORT = """
import json, sys, time
start, cpu = time.perf_counter(), time.process_time()
from vbsad_batch.config import load_config
from vbsad_batch.report.writer import write_report
processes = None if sys.argv[2] == "default" else int(sys.argv[2])
result = write_report(load_config(sys.argv[1]), force=True, processes=processes)
print(json.dumps({"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                  "figures": len(result.figures)}))
"""


def _python(code: str, *args: object) -> dict[str, Any]:
    """Run `code` in a fresh Python process; its one line of JSON output."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *(str(a) for a in args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark process failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _children_cpu() -> float:
    import resource  # noqa: PLC0415

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _best_rate(score: Any, x: Any, repeat: int) -> tuple[float, dict[str, Any]]:
    """(events/s of the best of `repeat` runs after a warm-up, the scores)."""
    result = score(x[:1000])
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = score(x)
        best = min(best, time.perf_counter() - start)
    return len(x) / best, result


def scoring(model_dir: Path, n_events: int, repeat: int) -> None:
    print(f"model: {model_dir}")
    print("start-up of a scoring process (imports and loading the model), fresh process:")
    startup = {side: _python(_STARTUP, side, model_dir) for side in ("numpy", "tensorflow")}
    for side, s in startup.items():
        print(
            f"  {side:10s} {s['wall']:6.2f} s wall {s['cpu']:6.2f} s CPU "
            f"{s['rss_mb']:7.0f} MB peak RSS"
        )
    print(
        f"  TensorFlow / NumPy: {startup['tensorflow']['cpu'] / startup['numpy']['cpu']:.1f}x "
        f"CPU, {startup['tensorflow']['rss_mb'] / startup['numpy']['rss_mb']:.1f}x memory"
    )

    import numpy as np  # noqa: PLC0415

    from vbsad_batch.models.networks import load_model, scores  # noqa: PLC0415
    from vbsad_batch.models.numpy_networks import load_network  # noqa: PLC0415

    network, model = load_network(model_dir), load_model(model_dir)
    x = np.random.default_rng(0).uniform(size=(n_events, network.n_features)).astype(np.float32)
    np_rate, np_scores = _best_rate(network.scores, x, repeat)
    tf_rate, tf_scores = _best_rate(lambda batch: scores(model, batch), x, repeat)
    print(f"scoring {n_events} events (best of {repeat}):")
    print(f"  numpy      {np_rate:12,.0f} events/s")
    print(f"  tensorflow {tf_rate:12,.0f} events/s")
    print(f"  NumPy / TensorFlow throughput: {np_rate / tf_rate:.2f}x")
    for name, theirs in tf_scores.items():
        ours = np_scores[name].astype(np.float64)
        reference = theirs.astype(np.float64)
        rel = np.abs(ours - reference) / np.maximum(np.abs(reference), 1e-30)
        print(f"  {name:5s} max relative difference NumPy vs TensorFlow: {rel.max():.2e}")


def report(config: Path) -> None:
    print(f"report of {config} (--force), fresh process each:")
    runs = {}
    for processes in ("1", "default"):
        cpu_before = _children_cpu()
        run = _python(_REPORT, config, processes)
        run["cpu_all"] = _children_cpu() - cpu_before  # the workers' CPU too
        runs[processes] = run
        print(
            f"  processes={processes:8s} {run['wall']:6.2f} s wall, {run['cpu_all']:6.2f} s CPU "
            f"(all processes), {run['figures']} figures"
        )
    print(f"  wall, 1 process / default: {runs['1']['wall'] / runs['default']['wall']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--report", type=Path, default=None, metavar="CONFIG")
    args = parser.parse_args()
    print(f"CPU cores usable: {len(os.sched_getaffinity(0))}; load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="vbsad-bench-scoring-") as scratch:
        model_dir = args.model_dir
        if model_dir is None:  # TensorFlow in a child: this process starts without it
            code = (
                "import sys; from pathlib import Path; "
                "from vbsad_batch.config import TrainingConfig; "
                "from vbsad_batch.models.networks import build_model, save_model; "
                "save_model(build_model('vae_nn', 14, TrainingConfig(seed=0)), Path(sys.argv[1]))"
            )
            model_dir = Path(scratch) / "vae_nn"
            subprocess.run([sys.executable, "-c", code, str(model_dir)], check=True)
        scoring(model_dir, args.events, args.repeat)
    if args.report is not None:
        report(args.report)


if __name__ == "__main__":
    main()
