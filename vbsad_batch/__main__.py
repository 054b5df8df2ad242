"""`python -m vbsad_batch ...` is the `vbsad` command."""

import sys

from vbsad_batch.cli import main

# The guard matters: worker processes started with "spawn" import this module again.
if __name__ == "__main__":
    sys.exit(main())
