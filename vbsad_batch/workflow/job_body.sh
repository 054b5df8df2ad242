# ---- the step (the same in every vbsad job script; vbsad_batch/workflow/job_body.sh) ----
# Runs `$VBSAD_COMMAND "$@"` once, with "{task}" in the arguments replaced by this array
# task's index. Preemption: Slurm sends USR1 to this script (--signal=B:USR1@<grace>) before
# the time limit or a preemption; the step gets TERM, stops cleanly (training checkpoints,
# every other stage writes atomically), and the job is requeued: the requeued run resumes
# and redoes only what is missing.
: "${SLURM_JOB_ID:?this script runs under Slurm: submit it with sbatch}"
: "${VBSAD_COMMAND:?set VBSAD_COMMAND to the vbsad command, e.g. 'vbsad' or 'python -m vbsad_batch'}"
export USER="${USER:-$(id -un)}"  # container runtimes (ch-run) need it; batch shells may lack it
task="${SLURM_ARRAY_TASK_ID:-0}"
arguments=()
for argument in "$@"; do
  arguments+=("${argument//\{task\}/$task}")
done
read -r -a vbsad <<< "$VBSAD_COMMAND"
launcher=()
if [ -n "${VBSAD_MPI:-}" ]; then
  read -r -a launcher <<< "$VBSAD_MPI"
fi
step=("${launcher[@]}" "${vbsad[@]}" "${arguments[@]}")

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
echo "[vbsad-job] $(now) start: job ${SLURM_JOB_ID}, array ${SLURM_ARRAY_JOB_ID:-none} task ${SLURM_ARRAY_TASK_ID:-none}, restart ${SLURM_RESTART_COUNT:-0}, host $(hostname)"
echo "[vbsad-job] step: ${step[*]}"

on_usr1() {
  echo "[vbsad-job] $(now) USR1: stopping the step and requeueing job ${SLURM_JOB_ID}"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || true
  scontrol requeue "${SLURM_JOB_ID}"
  echo "[vbsad-job] $(now) requeued"
  exit 0
}
trap on_usr1 USR1

# In the background, so that bash runs the trap while waiting (traps wait for a foreground
# command to finish).
"${step[@]}" &
pid=$!
set +e
wait "$pid"
status=$?
set -e
echo "[vbsad-job] $(now) end: exit status ${status}"
exit "$status"
