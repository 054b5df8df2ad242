"""`vbsad submit` and `vbsad status` on a REAL Slurm (the session's private single-node
cluster, tests/local_slurm.py): the quick demo as chained jobs gives the tables of `vbsad run
--quick` byte for byte, with the scan as an MPI job of two ranks; a failed array task holds
back its dependents, `status` names it and its log, and the next submit reruns only it; a
training job sent USR1 is requeued and ends with the weights of an uninterrupted training."""

from __future__ import annotations

import gzip
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SSWW_DIR, run_vbsad
from local_slurm import LocalSlurm

from vbsad_batch.config.loading import load_config
from vbsad_batch.demo.demo_config import DEMO_QUICK
from vbsad_batch.demo.prepare import prepare_demo
from vbsad_batch.workflow.analysis_state import lhe_task_files

pytestmark = pytest.mark.slow

JOB_TIMEOUT_S = 600


def _submission(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "slurm" / "submission.json").read_text())
    last: dict[str, Any] = document["submissions"][-1]
    return last


def _wait_all(cluster: LocalSlurm, out: Path) -> dict[str, list[str]]:
    """Wait for every job of the last submission; their final states by stage."""
    states = {}
    for job in _submission(out)["jobs"]:
        records = cluster.wait(job["job_id"], timeout=JOB_TIMEOUT_S)
        states[job["stage"]] = [r.state for r in records]
    return states


def _logs(out: Path, stage: str) -> str:
    return "\n".join(
        p.read_text() for p in sorted((out / "slurm" / "logs").glob(f"vbsad-{stage}_*"))
    )


def test_the_quick_demo_as_slurm_jobs_gives_the_tables_of_run_quick(
    slurm_cluster: LocalSlurm, tmp_path: Path
) -> None:
    local = run_vbsad("run", "--quick", "-o", tmp_path / "local", "-q", timeout=900)
    assert local.returncode == 0, local.stderr[-3000:]
    config, _ = prepare_demo(tmp_path / "cluster", DEMO_QUICK)
    out = config.parent

    proc = run_vbsad("submit", config, "--resource", "scan.ntasks=2", env=slurm_cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    submission = _submission(out)
    stages = [j["stage"] for j in submission["jobs"]]
    assert stages == ["preprocess", "datasets", "train", "score", "scan", "report"]
    jobs = {j["stage"]: j for j in submission["jobs"]}
    assert jobs["datasets"]["after"] == [jobs["preprocess"]["job_id"]]
    assert len(jobs["preprocess"]["array_tasks"]) == 15  # SM + LIN, QUAD of 7 operators
    assert jobs["train"]["array_tasks"] == [0, 1]  # the VAE and the VAE+NN

    states = _wait_all(slurm_cluster, out)
    assert all(s == ["COMPLETED"] * len(s) for s in states.values()), states
    for name in ("table.md", "table.csv", "sigma_curves.parquet", "curves.parquet"):
        ours, theirs = out / "scan" / name, tmp_path / "local" / "scan" / name
        assert ours.read_bytes() == theirs.read_bytes(), name
    # One MPI world of two ranks, not two size-1 runs.
    assert "on 2 rank(s)" in _logs(out, "scan")
    assert "step: srun --mpi=pmi2" in _logs(out, "scan")

    status = run_vbsad("status", config, env=slurm_cluster.env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "every stage is done" in status.stdout
    again = run_vbsad("submit", config, env=slurm_cluster.env)
    assert again.returncode == 0
    assert "nothing to submit: every selected stage is done" in again.stdout


def _ssww_config(directory: Path, extra_sm: list[Path], training: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    sm = [SSWW_DIR / "ssww_SM.lhe.gz", *extra_sm]
    lines = [
        'operators = ["cW"]',
        f'output_dir = "{directory / "out"}"',
        training,
        "[[samples]]",
        'component = "sm"',
        f"files = {json.dumps([str(p) for p in sm])}",
        "[[samples]]",
        'component = "lin"',
        'operator = "cW"',
        f'files = "{SSWW_DIR / "ssww_cW_LIN.lhe.gz"}"',
        "[[samples]]",
        'component = "quad"',
        'operator = "cW"',
        f'files = "{SSWW_DIR / "ssww_cW_QUAD.lhe.gz"}"',
    ]
    path = directory / "ana.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_failed_array_task_holds_back_its_dependents_and_is_rerun_alone(
    slurm_cluster: LocalSlurm, tmp_path: Path
) -> None:
    """A corrupt input (a real SM file cut in the middle of an event) fails its preprocess
    task; datasets and everything after are cancelled, not left pending; `status` names the
    task and its log; once the file is mended, `submit` sends that one task again."""
    corrupt = tmp_path / "data" / "more_sm.lhe"
    corrupt.parent.mkdir()
    whole = gzip.decompress((SSWW_DIR / "ssww_SM.lhe.gz").read_bytes())
    corrupt.write_bytes(whole[: len(whole) // 2])
    config = _ssww_config(tmp_path, [corrupt], "[training]\nepochs = 2\nbatch_size = 256")
    out = tmp_path / "out"

    proc = run_vbsad("submit", config, env=slurm_cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {j["stage"]: j for j in _submission(out)["jobs"]}
    assert jobs["preprocess"]["array_tasks"] == [0, 1, 2, 3]
    records = slurm_cluster.wait(jobs["preprocess"]["job_id"], timeout=JOB_TIMEOUT_S)
    by_task = {r.array_task_id: r.state for r in records}
    # The task order follows the sorted input paths, which depend on where the checkout is.
    shares = lhe_task_files(load_config(config))
    bad = next(i for i, files in enumerate(shares) if [f.name for f in files] == [corrupt.name])
    assert by_task == {i: "FAILED" if i == bad else "COMPLETED" for i in range(4)}
    for stage in ("datasets", "train", "score", "scan", "report"):
        records = slurm_cluster.wait(jobs[stage]["job_id"], timeout=60)
        assert {r.state for r in records} == {"CANCELLED"}, (stage, records)

    status = run_vbsad("status", config, env=slurm_cluster.env)
    assert status.returncode == 1  # a stage failed
    lines = status.stdout.splitlines()
    preprocess = next(line for line in lines if line.startswith("preprocess"))
    assert "failed" in preprocess
    assert "3/4 done" in preprocess
    log = out / "slurm" / "logs" / f"vbsad-preprocess_{jobs['preprocess']['job_id']}_{bad}.out"
    assert f"task {bad} (more_sm.lhe): FAILED 1:0; log {log}" in status.stdout
    assert "more_sm.lhe" in log.read_text()
    assert "vbsad: error:" in log.read_text()
    datasets = next(line for line in lines if line.startswith("datasets"))
    assert "held back" in datasets
    assert f"to carry on: vbsad submit {config}" in status.stdout

    corrupt.write_bytes(whole)  # mended
    proc = run_vbsad("submit", config, "--only", "preprocess", env=slurm_cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (rerun,) = _submission(out)["jobs"]
    assert (rerun["stage"], rerun["array_tasks"]) == ("preprocess", [bad])
    (record,) = slurm_cluster.wait(rerun["job_id"], timeout=JOB_TIMEOUT_S)
    assert record.state == "COMPLETED"
    status = run_vbsad("status", config, env=slurm_cluster.env)
    preprocess = next(ln for ln in status.stdout.splitlines() if ln.startswith("preprocess"))
    assert preprocess.split()[1] == "done"


def _weights(model_dir: Path) -> list[np.ndarray]:
    from vbsad_batch.models.networks import load_model  # noqa: PLC0415 - TensorFlow

    return [np.asarray(w) for w in load_model(model_dir).get_weights()]


def test_a_training_job_sent_usr1_is_requeued_and_ends_as_if_uninterrupted(
    slurm_cluster: LocalSlurm, tmp_path: Path
) -> None:
    training = "[training]\nepochs = 400\npatience = 400\nlearning_rate = 1e-3"
    config = _ssww_config(tmp_path / "cluster", [], training)
    reference = _ssww_config(tmp_path / "reference", [], training)
    for path in (config, reference):
        proc = run_vbsad("datasets", path, "-q")
        assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_vbsad("train", reference, "-q", timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]

    out = tmp_path / "cluster" / "out"
    proc = run_vbsad("submit", config, "--only", "train", env=slurm_cluster.env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (job,) = _submission(out)["jobs"]
    task = f"{job['job_id']}_0"
    checkpoint = out / "models" / "vae_latent3" / "checkpoint.npz"
    deadline = time.monotonic() + 120
    while not checkpoint.exists():  # a few epochs in
        assert time.monotonic() < deadline, _logs(out, "train")
        assert slurm_cluster.job_state(task) in (None, "PENDING", "RUNNING"), _logs(out, "train")
        time.sleep(0.1)
    slurm_cluster.run("scancel", "--signal=USR1", "--batch", task)

    (record,) = slurm_cluster.wait(job["job_id"], timeout=JOB_TIMEOUT_S)
    log = _logs(out, "train")
    assert record.state == "COMPLETED", log
    assert "USR1: stopping the step and requeueing" in log
    assert "restart 1," in log  # the requeued run
    assert "resumed" in log
    ours = _weights(out / "models" / "vae_latent3")
    theirs = _weights(tmp_path / "reference" / "out" / "models" / "vae_latent3")
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    shutil.rmtree(tmp_path / "reference")
