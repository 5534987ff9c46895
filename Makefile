# Everything runs from a local virtualenv in .venv, created on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Extras installed with mlgate: what the tests and the examples need (embeddings for minilm, keras for digits-cnn;
# the tests also serve TensorFlow, XGBoost, LightGBM and transformers models). `make install EXTRAS=test` leaves
# out every PyTorch-based runtime.
EXTRAS ?= test,embeddings,keras,tensorflow,xgboost,lightgbm,transformers

.PHONY: install serve test lint check clean

# torch is installed first, from its CPU build (torch==2.13.0 is a local CPU wheel on the team's machines),
# and constraints.txt pins it, so that sentence-transformers never pulls a CUDA build of torch.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	case ",$(EXTRAS)," in *,embeddings,*|*,keras,*|*,transformers,*) $(PY) -m pip install --quiet torch==2.13.0 ;; esac
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install mlgate with its test tools and the embeddings runtime

serve: $(STAMP)  ## serve the example models on http://127.0.0.1:8000 (their manifests open them to anonymous callers)
	$(VENV)/bin/mlgate serve

test: $(STAMP)  ## run the test suite
	$(PY) -m pytest

lint: $(STAMP)  ## ruff and mypy (strict) on the package
	$(VENV)/bin/ruff check src tests
	$(PY) -m mypy

check: lint test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
