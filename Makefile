# Two entry points (see README):
#   make run   - set everything up from a fresh clone and run the main job on the embedded demo
#   make test  - set everything up and run the whole test suite, linters included
# Everything installs into ./.venv; the Rust extension is built in release mode.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= vbsad-output
STAMP := $(VENV)/.installed
RUST_SOURCES := $(shell find rust_ext/src -name '*.rs') rust_ext/Cargo.toml Cargo.toml Cargo.lock

.PHONY: setup system-deps run test test-rust test-python lint clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml $(RUST_SOURCES)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "maturin>=1.7,<2"
	$(BIN)/pip install --quiet -e ".[train,mpi,report,test,lint,bench]"
	touch $(STAMP)

# The main job: the whole analysis end to end on the embedded demo (toy data, not physics):
# demo samples -> datasets -> train VAE and VAE+NN -> score -> scan -> report, in
# $(OUT)/demo/. Finished stages are skipped when run again.
run: setup
	$(BIN)/vbsad run --output $(OUT)/demo

# Debian's chromium renders the report in a test (a headless screenshot); Slurm + munge run a
# private single-node cluster for the batch tests (tests/local_slurm.py). Installed when
# missing and we may (root with apt-get); otherwise say how.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; \
	  else \
	    echo "chromium is missing: install Debian's chromium (apt-get install chromium)"; \
	  fi; }
	@command -v slurmctld >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q slurm-wlm munge || { apt-get update -q && apt-get install -y -q slurm-wlm munge; }; \
	  else \
	    echo "slurm is missing: install Debian's slurm-wlm and munge (apt-get install slurm-wlm munge)"; \
	  fi; }

test: setup system-deps lint test-rust test-python

lint: setup
	cargo fmt --all -- --check
	cargo clippy --all-targets --features python -- -D warnings
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-rust:
	cargo test

test-python: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV) target $(OUT) examples/demo examples/vbsad-output
