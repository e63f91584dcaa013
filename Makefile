# Quick start:  make run   (set up + the default pipeline)   |   make test   (set up + tests)
# Both are safe to repeat: the install reruns only when the pins change, and the
# pipeline only reruns the stages whose inputs changed (DVC).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.csl-installed

.PHONY: setup run test data clean-outputs

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "csl needs Python >= 3.11"'
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

data:
	@scripts/get-fashion-mnist.sh

run: setup data
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/csl run

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

clean-outputs:
	rm -rf data/prepared runs reports checkpoints mlflow.db mlartifacts dvc.lock
