# Everything runs from a local virtualenv in .venv, created on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Extras installed with mlgate; `make install EXTRAS=test` leaves out the embeddings (PyTorch) runtime.
EXTRAS ?= test,embeddings

.PHONY: install serve test test-cov lint check clean

# torch is installed first, from its CPU build (torch==2.13.0 is a local CPU wheel on the team's machines),
# and constraints.txt pins it, so that sentence-transformers never pulls a CUDA build of torch.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	case ",$(EXTRAS)," in *,embeddings,*) $(PY) -m pip install --quiet torch==2.13.0 ;; esac
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install mlgate with its test tools and the embeddings runtime

serve: $(STAMP)  ## serve the example models on http://127.0.0.1:8000 (their manifests open them to anonymous callers)
	$(VENV)/bin/mlgate serve

test: $(STAMP)  ## run the test suite (pytest-xdist, one worker per core: pyproject's addopts)
	$(PY) -m pytest

# The share of src/mlgate's lines the suite runs in-process: 91.7 % (7824 statements, 648 missed) on
# 2026-12-06; the gate is that, rounded down. Raise it when tests are added, never lower it to make a change pass.
COVERAGE_MIN ?= 91
test-cov: $(STAMP)  ## the test suite with line coverage; fails under COVERAGE_MIN percent
	$(PY) -m pytest --cov=mlgate --cov-report=term --cov-fail-under=$(COVERAGE_MIN)

lint: $(STAMP)  ## ruff and mypy (strict) on the package
	$(VENV)/bin/ruff check src tests
	$(PY) -m mypy

check: lint test-cov  ## lint, then the tests with the coverage gate (.ci/run runs this)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
