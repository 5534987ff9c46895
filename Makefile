# Everything runs from a local virtualenv in .venv, created on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
# Extras installed with mlgate: what the tests and the examples need (embeddings for minilm, keras for digits-cnn;
# the tests also serve TensorFlow, XGBoost, LightGBM and transformers models; otel for the tracing test).
# `make install EXTRAS=test` leaves out every PyTorch-based runtime.
EXTRAS ?= test,otel,embeddings,keras,tensorflow,xgboost,lightgbm,transformers

.PHONY: install serve test lint check docs clean grpc

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

# The share of src/mlgate's lines the suite runs in-process: 88.6 % (11,345 statements, 1,291 missed) on
# 2026-12-06, once gRPC, jobs and the framework runtimes landed (code that runs only inside `mlgate serve` and
# `mlgate worker` processes the tests start is not counted); the gate is that, rounded down. Raise it when tests
# are added, never lower it to make a change pass. --cov-precision=2: pytest-cov rounds the total to the precision
# before comparing, and at 0 digits 87.96 % passed a gate of 88.
COVERAGE_MIN ?= 88
COV_ARGS := $(if $(COVERAGE),--cov=mlgate --cov-report=term --cov-precision=2 --cov-fail-under=$(COVERAGE_MIN))

test: $(STAMP)  ## run the test suite (pytest-xdist, one worker per core); COVERAGE=1 adds the coverage gate
	$(PY) -m pytest $(COV_ARGS)

lint: $(STAMP)  ## ruff (with the layering rule of scripts/layers.py) and mypy (strict) on the package
	$(PY) scripts/layers.py --check
	$(VENV)/bin/ruff check src tests scripts
	$(PY) -m mypy

check: lint  ## lint, then the tests with the coverage gate (what .ci/run runs)
	$(MAKE) test COVERAGE=1

grpc: $(STAMP)  ## regenerate the gRPC modules in src/mlgate/protocols/grpc from grpc_service.proto (grpcio-tools)
	$(PY) scripts/grpc_generate.py

# The docs extra (MkDocs + Material) goes into the same .venv, only when `make docs` first needs it.
$(DOCS_STAMP): $(STAMP)
	$(PY) -c "import material, mkdocs" 2>/dev/null || $(PY) -m pip install --quiet -c constraints.txt -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)  ## build the documentation site into site/, offline; a warning fails the build
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
