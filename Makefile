# Dockyard: `make quickstart` runs the main job, `make test` runs the tests.
SHELL := /bin/bash
VENV ?= .venv
# Resolve a version-manager shim to the real interpreter once, so the venv (and the console
# scripts it writes) call the interpreter directly.
PYTHON ?= $(shell python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install bytecode test unit integration e2e lint bench quickstart clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(PY) scripts/fast_launcher.py
	touch $@
	$(MAKE) --no-print-directory bytecode

# The environment sets PYTHONDONTWRITEBYTECODE: compile once so every start skips the compiler.
bytecode:
	@$(PY) -m compileall -q -j 0 $(VENV)/lib src >/dev/null || true

test: install bytecode unit integration e2e

unit: install
	$(PY) -m pytest -q tests/unit

integration: install
	$(PY) -m pytest -q tests/integration

e2e: install
	$(PY) -m pytest -q tests/e2e

lint: install
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts

bench: install bytecode
	$(PY) bench/run.py

quickstart: install bytecode
	bash scripts/quickstart.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
