# corpusgen: `make demo` builds the bundled corpus and trains a tiny BERT on it; `make test` runs the tests.
# Both create their own virtual environment (.venv) first; `make test` runs ruff (lint + format check) before pytest.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CG := $(VENV)/bin/corpusgen
DEMO ?= out/demo
STEPS ?= 300

.PHONY: setup demo test test-all lint format bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch first: an open torch requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(CG) build -o $(DEMO)/data --overwrite
	$(CG) validate $(DEMO)/data
	$(CG) inspect $(DEMO)/data -n 2
	rm -rf $(DEMO)/run
	$(CG) train --data $(DEMO)/data --model tiny --steps $(STEPS) --batch-size 64 --out $(DEMO)/run
	$(CG) plot $(DEMO)/run

# Lint first: `make test` (what .ci/run calls) fails on a lint or format error before any test runs.
test: lint
	$(PY) -m pytest -m "not slow" -q

test-all: lint
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check corpusgen pipelines trainer tests bench
	$(VENV)/bin/ruff format --check corpusgen pipelines trainer tests bench

format: setup
	$(VENV)/bin/ruff format corpusgen pipelines trainer tests bench
	$(VENV)/bin/ruff check --fix corpusgen pipelines trainer tests bench

bench: setup
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) bench/bench_build.py
	$(PY) bench/bench_split.py
	$(PY) bench/bench_loader.py
	$(PY) bench/bench_word_ids.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis
