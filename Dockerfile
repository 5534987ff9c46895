# syntax=docker/dockerfile:1
# mlgate's image: the same `mlgate db upgrade` and `mlgate serve` steps, and the same settings
# (deploy/mlgate.env), as the local cluster that tests/deploy/test_local_cluster.py runs under load.
#
#   docker build -t mlgate .                                  # scikit-learn, ONNX, python runtimes
#   docker build -t mlgate:embeddings --build-arg EXTRAS=embeddings .   # + sentence-transformers (PyTorch CPU)
#
# Models are never baked in: mount a model repository at /models (read-only), or push versions to the
# registry (`mlgate models push`), which keeps them in MLGATE_ARTIFACT_STORE.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# Framework extras of mlgate to install, comma-separated (e.g. "embeddings"); empty: the core runtimes.
ARG EXTRAS=""
ARG TORCH_VERSION=2.13.0
# Compilers only here, for a dependency without a wheel for this platform; the final stage has none.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN python -m venv /opt/mlgate \
 && /opt/mlgate/bin/pip install --no-cache-dir --upgrade pip
# PyTorch from its CPU build first, so sentence-transformers never pulls a CUDA build (as the Makefile does).
RUN case ",${EXTRAS}," in *,embeddings,*) \
      /opt/mlgate/bin/pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu \
        "torch==${TORCH_VERSION}" ;; esac
RUN /opt/mlgate/bin/pip install --no-cache-dir -c constraints.txt ".${EXTRAS:+[${EXTRAS}]}"

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PATH=/opt/mlgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLGATE_HOST=0.0.0.0 \
    MLGATE_PORT=8000 \
    MLGATE_DATA_DIR=/var/lib/mlgate \
    MLGATE_MODEL_REPOSITORY=/models \
    HOME=/var/lib/mlgate
RUN groupadd --system --gid 10001 mlgate \
 && useradd --system --uid 10001 --gid mlgate --home-dir /var/lib/mlgate --no-create-home mlgate \
 && mkdir -p /var/lib/mlgate /models \
 && chown mlgate:mlgate /var/lib/mlgate
COPY --from=build /opt/mlgate /opt/mlgate
USER 10001:10001
WORKDIR /var/lib/mlgate
VOLUME ["/var/lib/mlgate"]
EXPOSE 8000
# Ready: every required model loaded and warmed, and not draining (SIGTERM turns it off before the stop).
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2).status != 200)"]
# SIGTERM drains (MLGATE_DRAIN_S), then finishes in-flight requests (MLGATE_SHUTDOWN_TIMEOUT_S): give the
# container at least their sum before the runtime's SIGKILL (compose: stop_grace_period; Kubernetes:
# terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["mlgate"]
CMD ["serve"]
