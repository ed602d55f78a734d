# Two entry points for a newcomer (README): `make demo` and `make test`.
# Each creates .venv if missing. A GPU machine picks its torch build without editing files:
#   make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3.11
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.neurosleep-installed

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[formats,dask,dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/neurosleep run protocols/hopfield_dreaming.yaml --overwrite

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check neurosleep tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
