"""Importing TensorFlow without its start-up lines on the user's terminal.

TensorFlow (through absl) writes lines such as "All log messages before absl::InitializeLog()
is called are written to STDERR" and "oneDNN custom operations are on" straight to file
descriptor 2 while it is imported, before `TF_CPP_MIN_LOG_LEVEL` can hold them back. The
command line imports it through `import_tensorflow_quietly()` first, with descriptor 2 pointed
at /dev/null for the import only; every later import of TensorFlow finds it loaded. With
`vbsad -v` (TF_CPP_MIN_LOG_LEVEL below 2) nothing is hidden. An import that fails still raises
(its traceback is printed after the descriptor is restored).
"""

from __future__ import annotations

import importlib
import os
import sys

__all__ = ["import_tensorflow_quietly"]


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and Keras with their start-up output discarded (see the docstring)."""
    if "tensorflow" in sys.modules:
        return
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") < "2":
        importlib.import_module("tensorflow")
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        importlib.import_module("tensorflow")
        importlib.import_module("keras")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
