"""The analysis as a Slurm workflow: `vbsad submit` and `vbsad status`.

Modules:

- `analysis_state`: per stage, its units of work (array tasks, models of the grid) and
  which are done, from the manifests (the stage contract's checks);
- `job_scripts`: readable sbatch scripts, from one step body (`job_body.sh`: the step in the
  background, USR1 forwarded, requeue), also the scripts of the repository's `jobs/`;
- `slurm_client`: sbatch, squeue, sacct, scontrol;
- `submission`: plan and submit one job per stage with work left, chained by `afterok`,
  recorded in `<output_dir>/slurm/submission.json`;
- `status`: done / running / pending / failed / to do per stage, with the failed units' logs.

Slurm is the distributed engine: nothing here schedules work itself.
"""
