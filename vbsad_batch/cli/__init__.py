"""The `vbsad` command line: one entry point, one module per subcommand.

Only this package parses arguments, configures logging and prints; stages are functions with
typed inputs and results. Heavy modules are imported inside the subcommand that needs them,
so `vbsad <cmd> --help` starts fast. Modules:

- `main`: the parser assembled from `COMMANDS`, exit codes, error lines;
- `options`: argument types and options the subcommands share, `UsageError`, `Terminated`;
- `output`: logging set-up, the terminal console, error lines, the sensitivity table;
- one module per subcommand, each with `add_parser` and `run`: `run` (the main job),
  `preprocess`, `inspect_lhe`, `demo_data`, `yields`, `datasets`, `train`, `score`, `scan`,
  `report`, `submit` and `status` (the Slurm workflow), `export_root`.
"""

from __future__ import annotations

from vbsad_batch.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
