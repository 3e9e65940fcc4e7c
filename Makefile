# Every target is the literal command the README and CI use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# GPU=cuda12 or GPU=cuda13 also installs JAX's NVIDIA plugin (README, "On a GPU"); every
# command then runs on the GPU. Empty: the CPU build of JAX.
GPU ?=
ifneq ($(filter-out cuda12 cuda13,$(GPU)),)
$(error GPU must be cuda12 or cuda13 (or empty for the CPU), got '$(GPU)')
endif
comma := ,
EXTRAS := test$(if $(GPU),$(comma)$(GPU))
STAMP := $(VENV)/.installed-$(or $(GPU),cpu)

.PHONY: help install test test-avx2 test-all lint demo figures reference-gpu clean

help:  ## List the targets.
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependency pins change.
$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)  ## Create .venv if missing and install the pinned dependencies and s5bench (GPU=cuda13 for an NVIDIA GPU).

# One pytest worker per core (pytest-xdist): the suite is compile-bound and XLA compiles on
# one thread. Tests of a file stay on one worker (their module fixtures are built once).
PYTEST := $(BIN)/python -m pytest -q -n auto --dist loadfile

test: install  ## Run the whole (fast) test suite.
	$(PYTEST)

# XLA:CPU emits code for the host's widest instruction set (AVX-512 on some CI machines):
# the fast suite must pass on a narrower one too, where float results differ in last bits.
test-avx2: install  ## Run the fast suite with XLA:CPU limited to AVX2 (as on a CPU without AVX-512).
	XLA_FLAGS="$(XLA_FLAGS) --xla_cpu_max_isa=AVX2" $(PYTEST)

test-all: install  ## Run every test, the slow learning probes and full matrices too.
	$(PYTEST) --all

lint: install  ## Lint with ruff.
	$(BIN)/ruff check .

demo: install  ## Train S5 on a memory task with 5 seeds at a CPU-sized budget.
	$(BIN)/s5bench popgym --model s5 --seeds 5

figures: install  ## Draw every figure from the CSVs under results/.
	$(BIN)/s5bench figures --results results --out figures

# On one H100/H200-class GPU: a few minutes, compilation included (README, "On a GPU").
reference-gpu: install  ## Measure the paper's claims on this machine's accelerator into results/reference/<device>/.
	$(BIN)/s5bench reference --out results/reference

clean:  ## Remove the virtual environment and caches.
	rm -rf $(VENV) .pytest_cache .ruff_cache
