# Two commands do everything, each setting up the project's own virtual environment:
#   make demo   keras-danet demo: segment generated scenes offline, write overlay and attention PNGs
#   make test   run the whole test suite once per Keras backend (tensorflow, jax, torch)
#   make test-fast   every test file once, on one backend, in under 5 minutes
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Longest pass first, so that the parallel passes end together (tools/run_suite.sh).
BACKENDS ?= tensorflow jax torch
# The slow tests (minutes each) run once, on the backend that runs them fastest on a CPU.
SLOW_BACKEND ?= jax
FAST_BACKEND ?= torch
STAMP := $(VENV)/.installed

# Nothing is written to $HOME: Keras (~/.keras), pip and the hubs (~/.cache) stay in the project.
export KERAS_HOME ?= $(CURDIR)/.cache/keras
export XDG_CACHE_HOME ?= $(CURDIR)/.cache
export HF_HOME ?= $(CURDIR)/.cache/huggingface
export KERAS_DANET_HOME ?= $(CURDIR)/.cache/keras_danet
export TORCHINDUCTOR_CACHE_DIR ?= $(CURDIR)/.cache/torchinductor
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-fast lint format clean

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile --constraint .ci/constraints.txt --editable ".[all,dev]"
	@# Byte-compiled on every core: pip compiles on one (install 109 s -> 80 s on 2 cores). A
	@# few files in the libraries are not Python 3.11 (torch's py312 tests), as pip skips them.
	-$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1
	touch $@

demo: $(STAMP)
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(VENV)/bin/keras-danet demo --out keras_danet_demo

# Every pass in parallel, TEST_JOBS at a time (tools/run_suite.sh says why), slow tests once.
test: $(STAMP)
	@PY=$(PY) BACKENDS="$(BACKENDS)" SLOW_BACKEND=$(SLOW_BACKEND) bash tools/run_suite.sh

# Everyday work: every test file on one backend (PyTorch: the quickest to start), the
# smallest sizes, no slow and no one-backend end-to-end tests; under 5 minutes on 2 cores.
test-fast: $(STAMP)
	@PY=$(PY) BACKENDS=$(FAST_BACKEND) RUN_SLOW=0 RUN_END_TO_END=0 MARKERS="not slow" \
	  PYTEST_ARGS="-n 2 --dist loadfile $(PYTEST_ARGS)" bash tools/run_suite.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .cache keras_danet_demo
