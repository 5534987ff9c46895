"""Run the HTTP server: uvicorn in this process, or ``workers`` uvicorn processes sharing one listening socket.

With ``workers > 1`` uvicorn's supervisor starts that many processes (spawned, so nothing is shared but the
socket); each builds its own app with ``create_app_from_environment``, loads its own copy of every model and
runs its own dynamic batcher. The parent hands them the settings it built as JSON in ``SETTINGS_ENV`` (flags
and config files are read once, by the parent) and applies database migrations once before they start, so
they do not race on the schema. Each process runs its model computations with ``cores // workers`` math
threads (``OMP_NUM_THREADS``, read by PyTorch and NumPy's BLAS at start-up) unless the environment already
sets it, so the processes do not oversubscribe the cores. Prometheus metrics are shared through files in a temporary
``PROMETHEUS_MULTIPROC_DIR`` (see ``mlgate.metrics``), removed when the server stops.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from mlgate.edge.connections import GuardedHttpTools
from mlgate.edge.connections import configure as configure_connections
from mlgate.settings import Settings

__all__ = ["SETTINGS_ENV", "available_cores", "create_app_from_environment", "run_server"]

SETTINGS_ENV = "_MLGATE_SERVE_SETTINGS_JSON"
"""Environment variable through which the parent hands the built settings (JSON) to its worker processes."""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def create_app_from_environment():  # type: ignore[no-untyped-def]  # uvicorn factory, returns FastAPI
    """uvicorn factory for a worker process: settings from ``SETTINGS_ENV``, logging as configured."""
    from mlgate.app import create_app
    from mlgate.logs import configure_logging

    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    configure_logging(settings.log_level, settings.log_format)
    configure_connections(settings)
    return create_app(settings)


def _settings_json(settings: Settings) -> str:
    """The settings as JSON with secrets in clear (pydantic writes SecretStr as '**********'), for children
    of this process only (the environment of a process is readable by its own user alone)."""

    def plain(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, Path | date):
            return str(value)
        raise TypeError(f"cannot write {type(value).__name__} as JSON")

    return json.dumps(settings.model_dump(mode="python"), default=plain)


def run_server(settings: Settings) -> None:
    """Serve ``settings`` until interrupted, with ``settings.workers`` HTTP processes (0: one per core)."""
    import uvicorn

    workers = settings.workers or available_cores()
    # proxy_headers=False: X-Forwarded-For is believed only from trusted_proxies (ClientAddressMiddleware).
    # http: uvicorn's httptools protocol with bounds on slow clients and connections per client address.
    configure_connections(settings)
    common = dict(host=settings.host, port=settings.port, loop="uvloop", http=GuardedHttpTools, log_config=None,
                  access_log=False, server_header=False, proxy_headers=False)
    if workers == 1:
        from mlgate.app import create_app

        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
        return
    if settings.database_auto_upgrade:
        from mlgate.db.migrate import upgrade

        upgrade(settings.effective_database_url)
    child = settings.model_copy(update={"database_auto_upgrade": False, "workers": 1})
    os.environ[SETTINGS_ENV] = _settings_json(child)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, available_cores() // workers)))
    with tempfile.TemporaryDirectory(prefix="mlgate-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # /metrics sums every process (mlgate.metrics)
        # uvicorn restarts a process whose event loop does not answer its health check in time; loading and
        # exporting models (ONNX) can hold the GIL for long, so allow what a model worker may take to start.
        uvicorn.run("mlgate.server:create_app_from_environment", factory=True, workers=workers,
                    timeout_worker_healthcheck=int(settings.worker_start_timeout_s),
                    **common)  # type: ignore[arg-type]
