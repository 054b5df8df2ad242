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

.PHONY: setup system-deps run test test-rust test-python lint clean bench image image-constraints

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
# private single-node cluster for the batch tests (tests/local_slurm.py); debootstrap,
# squashfs-tools, siftool and Charliecloud build and run the container image (`make image`).
# Installed when missing and we may (root with apt-get); otherwise say how.
CONTAINER_PACKAGES := debootstrap squashfs-tools squashfuse siftool charliecloud-runtime
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
	@for tool in debootstrap mksquashfs siftool ch-run squashfuse; do command -v $$tool >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y -q $(CONTAINER_PACKAGES) || { apt-get update -q && apt-get install -y -q $(CONTAINER_PACKAGES); }; \
	  else \
	    echo "container tools are missing: install Debian's $(CONTAINER_PACKAGES)"; \
	  fi; fi

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

# The container image (containers/README.md): the wheel, built here for manylinux_2_28 (zig
# links against an old glibc, so it runs on EL8-era grid nodes), then containers/vbsad.def
# built with Apptainer's semantics by containers/image_builder (root: debootstrap, chroot) into
# build/image/vbsad/ (directory), vbsad.sqfs and vbsad.sif (+ .sha256); its %test runs
# unprivileged with ch-run. The debootstrapped base is cached in ~/.cache/vbsad_batch, the
# wheel is rebuilt only when the sources change, and the image only when one of its inputs did.
SHARED_DIR ?= $(or $(VBSAD_SHARED_DIR),../shared)
TEST_LHE ?= $(SHARED_DIR)/testdata/ssww/ssww_SM.lhe.gz
IMAGE_SUITE := bookworm
WHEEL_DIR := build/wheels
WHEEL_STAMP := $(WHEEL_DIR)/.built
IMAGE_TOOLS := $(VENV)/.image-tools
IMAGE := build/image/vbsad.sif.sha256
PY_SOURCES := $(shell find vbsad_batch -type f ! -path '*/__pycache__/*' ! -name '*.so' 2>/dev/null)
IMAGE_INPUTS := containers/vbsad.def containers/constraints.txt $(wildcard containers/image_builder/*.py)
# The Debian mirror this machine's apt uses for the image's suite (never hard-coded).
MIRROR ?= $(shell apt-get indextargets --format '$$(REPO_URI) $$(RELEASE)' 2>/dev/null | awk '$$2=="$(IMAGE_SUITE)"{print $$1; exit}')

image: setup system-deps $(IMAGE)

$(IMAGE_TOOLS): pyproject.toml | $(STAMP)
	$(BIN)/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['image']))" \
	  | xargs -d '\n' $(BIN)/pip install --quiet
	touch $@

$(WHEEL_STAMP): $(IMAGE_TOOLS) $(RUST_SOURCES) $(PY_SOURCES) pyproject.toml README.md
	rm -rf $(WHEEL_DIR)
	PATH="$(CURDIR)/$(BIN):$$PATH" CARGO_TARGET_DIR=build/cargo-target \
	  $(BIN)/maturin build --release --zig --compatibility manylinux_2_28 --out $(WHEEL_DIR)
	touch $@

$(IMAGE): $(WHEEL_STAMP) $(IMAGE_INPUTS) $(TEST_LHE)
	@test -n "$(MIRROR)" || { echo "no $(IMAGE_SUITE) mirror in apt's configuration: make image MIRROR=URL"; exit 1; }
	@$(BIN)/python containers/freeze_constraints.py --check >/dev/null || \
	  echo "warning: containers/constraints.txt differs from this venv (make image-constraints)"
	PYTHONPATH=containers $(BIN)/python -m image_builder build containers/vbsad.def \
	  --output build/image \
	  --build-arg MIRROR="$(MIRROR)" \
	  --build-arg VERSION="$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("vbsad_batch"))')" \
	  --build-arg GIT_REVISION="$$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)" \
	  --build-arg BUILD_DATE="$$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	  --build-arg TEST_LHE="$(TEST_LHE)"

# Pin the image's Python packages to this venv's versions (the ones the tests ran with).
image-constraints: setup
	$(BIN)/python containers/freeze_constraints.py

clean:
	rm -rf $(VENV) target build $(OUT) examples/demo examples/vbsad-output
