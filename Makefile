# Two entry points for a newcomer (README): `make demo` and `make test`.
# Each creates .venv if missing. A GPU machine picks its torch build without editing files:
#   make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.neurosleep-installed

.PHONY: setup demo test wheel-check docs lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "neurosleep needs Python >= 3.11 (make PYTHON=python3.11)"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[formats,dask,study,dev,docs]"
	touch $(STAMP)

# The demo owns outputs/demo/ and replaces its own file there on every run.
demo: setup
	$(BIN)/neurosleep run protocols/hopfield_dreaming.yaml --output 'outputs/demo/{name}_seed{seed}.h5' --overwrite

# The suite, then the wheel as a pip user gets it, then the docs site (all that CI runs).
test: setup
	$(BIN)/python -m pytest -q
	$(MAKE) wheel-check docs

# Build the wheel, install it into a fresh venv, run a shipped protocol by name outside the
# repository, use the Python API on its run file, export it (.ci/wheel_check).
wheel-check: setup
	VENV_PYTHON=$(abspath $(BIN))/python bash .ci/wheel_check

# The docs site (MkDocs, API reference from the docstrings) into build/site; warnings fail.
docs: setup
	$(BIN)/mkdocs build --strict --quiet --site-dir build/site

lint: setup
	$(BIN)/ruff check neurosleep tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
