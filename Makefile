# make demo | make test | make bench — each creates .venv if it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)),)
export KCHEM_DATA_DIR ?= $(SHARED_DATA)
endif

.PHONY: demo test bench install install-dev clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "keras-chem needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# pip byte-compiles what it installs on one core; compileall after it uses every core (a minute less on 2).
INSTALL := $(BIN)/pip install --quiet --no-compile -e
COMPILE := $(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || echo "some installed files did not byte-compile"

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(INSTALL) ".[tf,jax]"
	$(COMPILE)
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(INSTALL) ".[dev]"
	$(COMPILE)
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/kchem train elembert --dataset tox21 --folds 8

# Two pytest workers (pytest-xdist), each test module whole on one of them (its shared fixtures built once).
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q --durations=10 -n $(TEST_WORKERS) --dist loadfile

test: install-dev
	KERAS_BACKEND=jax $(PYTEST)
	KERAS_BACKEND=tensorflow $(PYTEST) -m "not backend_independent and not runner_logic"

bench: install-dev
	$(BIN)/python bench/neighbors_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
