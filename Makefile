# Quick start:  make run   (set up + the default pipeline)   |   make test   (set up + tests)
# Both are safe to repeat: the install reruns only when the pins change, and the
# pipeline only reruns the stages whose inputs changed (DVC).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
# this machine's pip config lists local package folders that may be absent: hide that noise
QUIET_PIP := grep -v 'is ignored: it is neither a file nor a directory' || true
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.csl-installed

.PHONY: setup run test data clean-outputs peer

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "csl needs Python >= 3.11"'
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned dependencies into $(VENV) (first time: a few minutes) ..."
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock 2>&1 | { $(QUIET_PIP); }
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | { $(QUIET_PIP); }
	@touch $(STAMP)

setup: $(STAMP)

data:
	@scripts/get-fashion-mnist.sh

run: setup data
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/csl run

test: setup
	@scripts/ensure-kubectl.sh
	@scripts/ensure-postgres.sh
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4

clean-outputs:
	rm -rf data/prepared runs reports checkpoints mlflow.db mlartifacts dvc.lock

# the peer libraries of benchmarks/throughput.py and fidelity.py (lightly; SupCon's loss from
# pytorch-metric-learning), installed for the benchmarks only (not in .venv)
peer: setup
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --target build/peer lightly==1.6.0 pytorch-metric-learning==2.9.0 2>&1 | { $(QUIET_PIP); }
