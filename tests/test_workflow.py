"""The Slurm workflow without a cluster: the [slurm] table, the rendered scripts (and that
`jobs/` holds exactly what the code renders), the job step run by bash, array shares of
`vbsad preprocess`, and what `vbsad submit` plans for an analysis of the REAL SSWW samples as
its stages get done. The jobs on a real Slurm: tests/test_slurm_workflow.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SSWW_DIR

from vbsad_batch.cli import main
from vbsad_batch.config import load_config
from vbsad_batch.config.schema import ConfigError
from vbsad_batch.config.slurm import SlurmResources
from vbsad_batch.ingest.samples import lhe_ingested
from vbsad_batch.workflow.job_scripts import JobScript, array_spec, hand_scripts, render
from vbsad_batch.workflow.submission import plan_submission

REPO = Path(__file__).resolve().parents[1]
SSWW = ("ssww_SM.lhe.gz", "ssww_cW_LIN.lhe.gz", "ssww_cW_QUAD.lhe.gz")


def _analysis(tmp_path: Path, slurm: str = "", seeds: str = "[0, 1]") -> Path:
    lines = [
        'operators = ["cW"]',
        'training_operator = "cW"',
        f'output_dir = "{tmp_path / "out"}"',
        "[training]",
        f"seeds = {seeds}",
        "epochs = 2",
        "batch_size = 256",
    ]
    for file, component in zip(SSWW, ("sm", "lin", "quad"), strict=True):
        lines += ["[[samples]]", f'component = "{component}"', f'files = "{SSWW_DIR / file}"']
        if component != "sm":
            lines.append('operator = "cW"')
    path = tmp_path / "ana.toml"
    path.write_text("\n".join(lines) + "\n" + slurm, encoding="utf-8")
    return path


# --- the [slurm] table ------------------------------------------------------------------------


def test_slurm_table_defaults_and_per_stage_resources(tmp_path: Path) -> None:
    config = load_config(_analysis(tmp_path))
    assert config.slurm.resources("train") == SlurmResources()
    assert (config.slurm.jobs, config.slurm.grace_s, config.slurm.files_per_task) == (
        "array",
        120,
        1,
    )
    text = """
[slurm]
partition = "short"
time = "01:00:00"
extra = ["--constraint=cpu"]
files_per_task = 2
[slurm.train]
time = "1-00:00:00"
mem = "8G"
extra = "--gres=gpu:0"
[slurm.scan]
ntasks = 4
"""
    config = load_config(_analysis(tmp_path, text))
    train = config.slurm.resources("train")
    assert (train.partition, train.time, train.mem) == ("short", "1-00:00:00", "8G")
    assert train.extra == ("--constraint=cpu", "--gres=gpu:0")
    assert config.slurm.resources("scan").ntasks == 4
    assert config.slurm.resources("report") == config.slurm.defaults
    assert config.slurm.files_per_task == 2


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("[slurm]\npartiton = 'x'\n", r"slurm\.partiton: unknown key \(did you mean 'partition'"),
        ("[slurm]\ntime = '2 hours'\n", r"slurm\.time: '2 hours' is not a Slurm time limit"),
        ("[slurm]\nmem = '4 GB'\n", r"slurm\.mem: '4 GB' is not a Slurm memory size"),
        ("[slurm]\nntasks = 0\n", r"slurm\.ntasks: must be >= 1, got 0"),
        ("[slurm]\njobs = 'mp'\n", r"slurm\.jobs: 'mp' is not one of array, mpi \(did you"),
        ("[slurm]\nextra = ['constraint=cpu']\n", r"slurm\.extra\[0\]: an sbatch option starts"),
        ("[slurm.trian]\ntime = '10'\n", r"slurm\.trian: unknown key \(did you mean 'train'"),
        ("[slurm.train]\njobs = 'mpi'\n", r"slurm\.train\.jobs: unknown key"),
        ("[slurm]\naccount = ''\n", r"slurm\.account: must not be empty"),
        ("[slurm]\ncontainer_exec = 'ch-run x'\n", r"slurm\.container_exec: .* must contain"),
        ("[slurm]\ncontainer_exec = '{img} x'\n", r"unknown placeholder \{img\}"),
    ],
)
def test_slurm_table_errors_name_the_key(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_config(_analysis(tmp_path, text))


def test_slurm_container_and_the_command_of_its_jobs(tmp_path: Path) -> None:
    text = "[slurm]\ncontainer = 'images/vbsad.sif'\n"
    config = load_config(_analysis(tmp_path, text))
    image = (tmp_path / "images" / "vbsad.sif").resolve()
    assert config.slurm.container == image  # relative to the config file
    assert config.slurm.container_command(mpi=False) == f"apptainer exec {image} vbsad"
    text += "container_exec = 'ch-run {join} --set-env {image} -- vbsad'\n"
    config = load_config(_analysis(tmp_path, text))
    assert config.slurm.container_command(mpi=True) == f"ch-run --join --set-env {image} -- vbsad"
    assert config.slurm.container_command(mpi=False) == f"ch-run --set-env {image} -- vbsad"
    text += "[slurm.scan]\nntasks = 2\n"
    jobs = {j.stage: j for j in plan_submission(load_config(_analysis(tmp_path, text))).jobs}
    assert jobs["scan"].script.command == f"ch-run --join --set-env {image} -- vbsad"
    assert jobs["datasets"].script.command == f"ch-run --set-env {image} -- vbsad"
    assert load_config(_analysis(tmp_path)).slurm.container_command(mpi=False) is None


# --- scripts -----------------------------------------------------------------------------------


def test_array_spec() -> None:
    assert array_spec([0, 1, 2, 5, 7, 8], None) == "0-2,5,7-8"
    assert array_spec([3], 10) == "3%10"
    assert array_spec([4, 2, 3, 3], 2) == "2-4%2"
    with pytest.raises(ValueError, match="at least one task"):
        array_spec([], None)


def test_jobs_directory_holds_what_the_code_renders() -> None:
    """One source of truth: `jobs/*.sbatch` are the rendered hand scripts, byte for byte."""
    rendered = hand_scripts()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in (REPO / "jobs").glob("*.sbatch")}
    assert on_disk == rendered
    for name in rendered:
        path = REPO / "jobs" / name
        assert os.access(path, os.X_OK), f"{path} is not executable"
        proc = subprocess.run(
            ["bash", "-n", str(path)], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, (name, proc.stderr)


def _run_script(script: Path, tmp_path: Path, task: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLURM_JOB_ID": "4242"}
    if task is not None:
        env |= {"SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_JOB_ID": "4241"}
    return subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_the_step_body_runs_vbsad_with_the_task_and_passes_its_exit_status(tmp_path: Path) -> None:
    """The body as bash runs it (outside Slurm, SLURM_* set by hand): `{task}` becomes the
    array index, the log header names the job, and the step's exit status is the job's."""
    files = tmp_path / "files.txt"
    files.write_text("\n".join(str(SSWW_DIR / f) for f in SSWW) + "\n", encoding="utf-8")
    job = JobScript(
        name="vbsad-preprocess",
        description="test",
        arguments=("preprocess", "--files-from", str(files), "--task", "{task}", "-o", "shards"),
        command=f"{sys.executable} -m vbsad_batch",
        resources=SlurmResources(time="10"),
        log_dir=str(tmp_path / "logs"),
        array="0-2",
    )
    script = tmp_path / "job.sbatch"
    script.write_text(render(job), encoding="utf-8")
    assert "#SBATCH --time=10\n" in script.read_text()
    proc = _run_script(script, tmp_path, "1")
    assert proc.returncode == 0, proc.stderr
    assert "[vbsad-job]" in proc.stdout
    assert "job 4242, array 4241 task 1" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "shards").glob("*.parquet")) == [
        "ssww_cW_LIN.parquet"
    ]
    proc = _run_script(script, tmp_path, "7")  # no such share: vbsad's usage error, exit 2
    assert proc.returncode == 2
    assert "--task 7: there are 3 input(s), 1 per task, so tasks 0..2" in proc.stderr
    assert "end: exit status 2" in proc.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode != 0
    assert "this script runs under Slurm" in proc.stderr


# --- preprocess shares --------------------------------------------------------------------------


def test_preprocess_array_shares_name_shards_as_the_whole_list(tmp_path: Path) -> None:
    same = tmp_path / "other"
    same.mkdir()
    shutil.copy(SSWW_DIR / SSWW[0], same / SSWW[0])  # the same name twice: names get a hash
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"# the samples\n{SSWW_DIR}/ssww_*.lhe.gz\n\nother/{SSWW[0]}\n", encoding="utf-8"
    )
    whole = tmp_path / "whole"
    assert main(["preprocess", "--files-from", str(listing), "-o", str(whole), "-q"]) == 0
    parts = tmp_path / "parts"
    for task in (1, 0):
        args = ["--files-from", str(listing), "--task", str(task), "--files-per-task", "3"]
        assert main(["preprocess", *args, "-o", str(parts), "-q"]) == 0
    names = sorted(p.name for p in whole.glob("*.parquet"))
    assert len(names) == 4
    assert sorted(p.name for p in parts.glob("*.parquet")) == names
    index = json.loads((parts / "manifest.json").read_text())
    assert len(index["shards"]) == 4


def test_preprocess_task_beyond_the_list_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"{SSWW_DIR / SSWW[0]}\nmissing.lhe\n", encoding="utf-8")
    assert main(["preprocess", "--files-from", str(listing), "-o", str(tmp_path / "s")]) == 2
    assert f"{listing}:2: no such file" in capsys.readouterr().err
    listing.write_text(f"{SSWW_DIR / SSWW[0]}\n", encoding="utf-8")
    args = ["preprocess", "--files-from", str(listing), "--task", "1", "-o", str(tmp_path / "s")]
    assert main(args) == 2
    assert "--task 1: there are 1 input(s), 1 per task, so tasks 0..0" in capsys.readouterr().err


# --- what submit plans --------------------------------------------------------------------------


def test_plan_follows_what_is_done(tmp_path: Path) -> None:
    config = load_config(
        _analysis(tmp_path, "[slurm]\nfiles_per_task = 2\n[slurm.scan]\nntasks = 2\n")
    )
    plan = plan_submission(config)
    stages = [j.stage for j in plan.jobs]
    assert stages == ["preprocess", "datasets", "train", "score", "scan", "report"]
    jobs = {j.stage: j for j in plan.jobs}
    assert jobs["preprocess"].tasks == (0, 1)  # three files, two per task
    assert jobs["train"].tasks == jobs["score"].tasks == (0, 1, 2, 3)  # 2 kinds x 2 seeds
    assert [j.after for j in plan.jobs] == [(), *[(s,) for s in stages[:-1]]]
    assert jobs["scan"].script.mpi == "srun --mpi=pmi2"
    assert jobs["train"].script.mpi == ""
    assert "--task" in jobs["train"].script.arguments

    # The inputs converted ahead (task 0 of preprocess only): preprocess plans task 1 alone.
    share = ["--task", "0", "--files-per-task", "2", "-q"]
    assert main(["preprocess", "--config", str(config.path), *share]) == 0
    inputs = [SSWW_DIR / f for f in sorted(SSWW)]  # SM, cW_LIN, cW_QUAD: the config's order
    assert [lhe_ingested(f, config.output_dir) for f in inputs] == [True, True, False]
    assert plan_submission(config).jobs[0].tasks == (1,)

    # Datasets and two of the four models done: train gets the other two, score all four.
    assert main(["datasets", str(config.path), "-q"]) == 0
    assert main(["train", str(config.path), "--task", "0", "-q"]) == 0
    assert main(["train", str(config.path), "--task", "3", "-q"]) == 0
    plan = plan_submission(config)
    assert plan.done == {"preprocess": "done", "datasets": "done"}
    jobs = {j.stage: j for j in plan.jobs}
    assert list(jobs) == ["train", "score", "scan", "report"]
    assert jobs["train"].tasks == (1, 2)
    assert jobs["score"].tasks == (0, 1, 2, 3)  # after a submitted stage: whole
    assert jobs["train"].after == ()

    only = plan_submission(config, only=["score"])
    assert [j.stage for j in only.jobs] == ["score"]
    assert only.jobs[0].tasks == (0, 1, 2, 3)  # none scored yet; two will fail, and it says:
    assert "train are not done and not submitted" in only.warnings[0]


def test_submit_dry_run_prints_scripts_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _analysis(tmp_path)
    args = ["submit", str(config), "--dry-run", "--resource", "time=00:30:00"]
    assert main([*args, "--resource", "train.mem=2G", "--only", "train", "score"]) == 0
    out = capsys.readouterr().out
    assert out.count("#!/bin/bash") == 2
    assert "#SBATCH --time=00:30:00" in out
    assert out.count("#SBATCH --mem=2G") == 1
    assert "--dependency=afterok:<train job id> --kill-on-invalid-dep=yes" in out
    assert "dry run: 2 job(s), nothing written or submitted" in out
    assert not (tmp_path / "out").exists()
    assert main(["submit", str(config), "--dry-run", "--resource", "trian.time=10"]) == 2
    assert "expected [STAGE.]KEY=VALUE" in capsys.readouterr().err
    assert main(["submit", str(config), "--dry-run", "--resource", "time=2h"]) == 2
    assert "'2h' is not a Slurm time limit" in capsys.readouterr().err
