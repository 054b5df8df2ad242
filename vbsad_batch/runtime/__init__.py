"""What every stage runs on: the stage contract and the machinery beneath it.

Modules:

- `stage`: the stage contract: key -> up to date? -> clean -> write atomically -> manifest
  last -> one typed result; inputs verified against the manifests that made them;
- `provenance`: checksums, tool version, manifests;
- `atomic_write`: outputs that appear complete or not at all;
- `progress`: progress as data (`ProgressEvent`) and its reporters (terminal bar, log lines);
- `mpi`: work split over MPI ranks (mpi4py), with a one-process fallback;
- `cpus`: the CPUs this process may run on.
"""
