# Two commands do everything, each setting up the project's own virtual environment:
#   make demo   keras-danet demo: segment generated scenes offline, write overlay and attention PNGs
#   make test   run the whole test suite once per Keras backend (tensorflow, jax, torch)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BACKENDS ?= tensorflow jax torch
# The slow tests (minutes each) run once, on the backend that runs them fastest on a CPU.
SLOW_BACKEND ?= jax
STAMP := $(VENV)/.installed

# Nothing is written to $HOME: Keras (~/.keras), pip and the hubs (~/.cache) stay in the project.
export KERAS_HOME ?= $(CURDIR)/.cache/keras
export XDG_CACHE_HOME ?= $(CURDIR)/.cache
export HF_HOME ?= $(CURDIR)/.cache/huggingface
export KERAS_DANET_HOME ?= $(CURDIR)/.cache/keras_danet
export TORCHINDUCTOR_CACHE_DIR ?= $(CURDIR)/.cache/torchinductor
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test lint format clean

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint .ci/constraints.txt --editable ".[all,dev]"
	touch $@

demo: $(STAMP)
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(VENV)/bin/keras-danet demo --out keras_danet_demo

test: $(STAMP)
	@set -euo pipefail; \
	scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; \
	export KERAS_HOME=$$scratch/keras XDG_CACHE_HOME=$$scratch/cache HF_HOME=$$scratch/hf \
	       KERAS_DANET_HOME=$$scratch/keras_danet TORCHINDUCTOR_CACHE_DIR=$$scratch/inductor; \
	for backend in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$backend"; \
	  start=$$SECONDS; \
	  KERAS_BACKEND=$$backend $(PY) -m pytest -p no:cacheprovider -m "not slow" $(PYTEST_ARGS); \
	  echo "=== KERAS_BACKEND=$$backend took $$((SECONDS - start)) s"; \
	done; \
	echo "=== slow tests, once, KERAS_BACKEND=$(SLOW_BACKEND)"; \
	start=$$SECONDS; \
	KERAS_BACKEND=$(SLOW_BACKEND) $(PY) -m pytest -p no:cacheprovider -m slow -s $(PYTEST_ARGS); \
	echo "=== slow tests took $$((SECONDS - start)) s"

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .cache keras_danet_demo
