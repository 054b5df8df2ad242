# Two entry points (see README):
#   make run   - set everything up from a fresh clone and run the main job on the embedded demo
#   make test  - set everything up and run the whole test suite, linters included
# Everything installs into ./.venv; the Rust extension is built in release mode.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= vbsad-output
STAMP := $(VENV)/.installed
RUST_SOURCES := $(wildcard rust_ext/src/*.rs) rust_ext/Cargo.toml Cargo.toml Cargo.lock

.PHONY: setup run test test-rust test-python lint clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml $(RUST_SOURCES)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "maturin>=1.7,<2"
	$(BIN)/pip install --quiet -e ".[train,mpi,test,lint,bench]"
	touch $(STAMP)

# The main job: the whole analysis end to end on the embedded demo (toy data, not physics):
# demo samples -> datasets -> train VAE and VAE+NN -> score -> scan -> report, in
# $(OUT)/demo/. Finished stages are skipped when run again.
run: setup
	$(BIN)/vbsad run --output $(OUT)/demo

test: setup lint test-rust test-python

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
