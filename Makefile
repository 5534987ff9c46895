# Everything runs from a local virtualenv in .venv, created on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install serve test lint check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install mlgate with its test tools

serve: $(STAMP)  ## serve the example models on http://127.0.0.1:8000, open to anonymous callers (a local demo)
	MLGATE_ANONYMOUS_MODELS='["breast-cancer","digits"]' $(VENV)/bin/mlgate serve

test: $(STAMP)  ## run the test suite
	$(PY) -m pytest

lint: $(STAMP)  ## ruff and mypy (strict) on the package
	$(VENV)/bin/ruff check src tests
	$(PY) -m mypy

check: lint test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
