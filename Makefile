# Every target is the literal command the README and CI use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install test test-all lint demo figures clean

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependency pins change.
$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[test]"
	touch $(STAMP)

install: $(STAMP)  ## Create .venv if missing and install the pinned dependencies and s5bench.

test: install  ## Run the whole (fast) test suite.
	$(BIN)/python -m pytest -q

test-all: install  ## Run every test, the slow learning probes and full matrices too.
	$(BIN)/python -m pytest -q --all

lint: install  ## Lint with ruff.
	$(BIN)/ruff check .

demo: install  ## Train S5 on a memory task with 5 seeds at a CPU-sized budget.
	$(BIN)/s5bench popgym --model s5 --seeds 5

figures: install  ## Draw every figure from the CSVs under results/.
	$(BIN)/s5bench figures --results results --out figures

clean:  ## Remove the virtual environment and caches.
	rm -rf $(VENV) .pytest_cache .ruff_cache
