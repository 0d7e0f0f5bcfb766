# Two commands matter (see README):  make run   and   make test
# Both create a local virtualenv in .venv (no root needed) and install the project into it.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run run-lb test unit test-deps lint types bench clean

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,test]'
	touch $(STAMP)

## run: install, then start the local demo stack (3 shards, 6-node cluster, 2 chat nodes);
## devstack/ runs from the checkout (it is not installed: not in the wheel, not in the image)
run: $(STAMP)
	$(BIN)/python -m devstack

## run-lb: like run, with nginx in front on http://localhost:8000 (needs the nginx package)
run-lb: $(STAMP)
	$(BIN)/python -m devstack --lb

## test: install, then lint, type-check and run the whole test suite
test: $(STAMP) test-deps lint types
	$(BIN)/python -m pytest

## unit: the fast tier only (tests/unit: in-memory fakes, no servers, no processes), no lint
unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# Chromium, nginx and shellcheck from the OS packages when possible (see the script).
test-deps:
	scripts/test-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy shardring chat devstack

## bench: this server against peer-python and peer-node, same run, same machine (slow)
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
