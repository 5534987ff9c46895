"""Run the HTTP server: uvicorn in this process, or ``workers`` uvicorn processes on one port.

With ``workers > 1`` a supervisor (``mlgate.supervisor``, uvicorn's with one ``SO_REUSEPORT`` socket per process
on Linux, so the kernel spreads connections evenly) starts that many processes (spawned, so nothing is shared
but the port); each builds its own app with ``create_app_from_environment``, loads its own copy of every model and
runs its own dynamic batcher. The parent hands them the settings it built as JSON in ``SETTINGS_ENV`` (flags
and config files are read once, by the parent) and applies database migrations once before they start, so
they do not race on the schema. Each process runs its model computations with ``cores // workers`` math
threads (``OMP_NUM_THREADS``, read by PyTorch and NumPy's BLAS at start-up) unless the environment already
sets it, so the processes do not oversubscribe the cores. Prometheus metrics are shared through files in a temporary
``PROMETHEUS_MULTIPROC_DIR`` (see ``mlgate.metrics``), removed when the server stops.

Stopping (``GracefulExit``), in each HTTP process: the first SIGTERM or SIGINT turns readiness off
(``DataPlane.drain``: 400, "not ready", on ``/v2/health/ready``) while the server goes on serving for
``drain_s`` seconds, every answer with ``Connection: close`` so that clients and load balancers leave it;
then uvicorn stops listening, lets the requests in flight finish (at most ``shutdown_timeout_s``), and the
lifespan's shutdown closes the batchers (their queues are empty by then) and writes the prediction log's
buffer before the process exits. A second signal ends the drain at once. Under ``--workers N`` the parent
passes SIGTERM on to every process, and each drains the same way.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlgate.edge.connections import GuardedHttpTools
from mlgate.edge.connections import configure as configure_connections
from mlgate.settings import Settings

if TYPE_CHECKING:
    from mlgate.inference.dataplane import Stopping

__all__ = ["SETTINGS_ENV", "GracefulExit", "available_cores", "create_app_from_environment", "run_server"]

log = structlog.get_logger("mlgate.server")

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
    from mlgate.logs import configure_logging

    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    configure_logging(settings.log_level, settings.log_format, settings.log_file)
    configure_connections(settings)
    return _graceful_app(settings)


def _graceful_app(settings: Settings) -> ASGIApp:
    """uvicorn factory: the app, with ``GracefulExit`` in charge of this process's stop signals.

    Called by uvicorn inside ``Server.serve``, once its own signal handlers are in place, so they are the
    ones ``GracefulExit`` passes the signal on to after the drain.
    """
    from mlgate.app import create_app

    app = create_app(settings)
    GracefulExit(app.stopping, settings.drain_s).install()
    return CloseWhileDraining(app, app.stopping) if settings.drain_s > 0 else app


class GracefulExit:
    """This process's SIGTERM/SIGINT handler: drain first, then hand the signal to uvicorn's own handler.

    First signal: ``stopping.drain()`` (not ready: 400 on /v2/health/ready; serving goes on), and after
    ``drain_s`` seconds the signal goes to the handler that was installed before (uvicorn's: stop listening,
    finish the requests in flight, run the lifespan's shutdown). A second signal during the drain is passed
    on at once.
    Install it from inside the running event loop.
    """

    def __init__(self, stopping: Stopping, drain_s: float) -> None:
        self.stopping = stopping
        self.drain_s = drain_s
        self._loop = asyncio.get_running_loop()
        self._previous: dict[int, Callable[[int, FrameType | None], Any]] = {}
        self._signalled = False
        self._passed_on = False

    def install(self) -> None:
        """Put this handler in front of the current SIGTERM and SIGINT handlers (uvicorn's)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if callable(previous):
                self._previous[sig] = previous
                signal.signal(sig, self._handle)

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        if self._signalled or self.drain_s <= 0:
            self._pass_on(sig)  # a second signal (or no drain): uvicorn's turn; a third Ctrl-C forces the exit
            return
        self._signalled = True
        self.stopping.drain()
        # A signal handler may interrupt the loop anywhere: call_soon_threadsafe is the safe way in.
        self._loop.call_soon_threadsafe(self._loop.call_later, self.drain_s, self._drained, sig)

    def _drained(self, sig: int) -> None:
        if not self._passed_on:
            self._pass_on(sig)

    def _pass_on(self, sig: int) -> None:
        self.stopping.drain()
        if not self._passed_on:
            log.info("stopping: no new connections, finishing the requests in flight")
        self._passed_on = True
        self._previous[sig](sig, None)


class CloseWhileDraining:
    """ASGI wrapper: while the server drains, every HTTP answer says ``Connection: close``, so keep-alive
    clients (and load balancers' pooled connections) reconnect elsewhere before the server stops listening."""

    def __init__(self, app: ASGIApp, stopping: Stopping) -> None:
        self.app = app
        self.stopping = stopping
        self.state = getattr(app, "state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.stopping.draining:
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)


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


def _refuse_newer_schema(settings: Settings) -> None:
    """Raise SchemaTooNew before anything starts when a newer release migrated the database; a database
    that cannot be reached now is left to start-up (which retries or fails with its own message)."""
    from mlgate.db.migrate import SchemaTooNew, check_schema

    try:
        check_schema(settings.effective_database_url)
    except SchemaTooNew:
        raise
    except Exception as exc:  # noqa: BLE001 - only a schema we can read and do not know stops us here
        log.warning("could not read the database schema revision before start-up", error=str(exc)[:200])


def run_server(settings: Settings) -> None:
    """Serve ``settings`` until stopped, with ``settings.workers`` HTTP processes (0: one per core).

    Stopping drains first (module docstring). Raises SchemaTooNew before starting when a newer release has
    migrated the database; exits with status 3 when the app fails to start (uvicorn's STARTUP_FAILURE).
    """
    import uvicorn

    from mlgate.supervisor import Supervisor, listening_sockets

    _refuse_newer_schema(settings)
    workers = settings.workers or available_cores()
    # proxy_headers=False: X-Forwarded-For is believed only from trusted_proxies (ClientAddressMiddleware).
    # http: uvicorn's httptools protocol with bounds on slow clients and connections per client address.
    configure_connections(settings)
    common: dict[str, Any] = dict(
        host=settings.host, port=settings.port, loop="uvloop", http=GuardedHttpTools, log_config=None,
        access_log=False, server_header=False, proxy_headers=False, factory=True,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_s)))
    if workers == 1:
        # The app is built inside uvicorn's serve (a factory), after its signal handlers: GracefulExit wraps them.
        server = uvicorn.Server(uvicorn.Config(functools.partial(_graceful_app, settings), **common))
        server.run()
        if not server.started:
            sys.exit(3)
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
        config = uvicorn.Config("mlgate.server:create_app_from_environment", workers=workers,
                                timeout_worker_healthcheck=int(settings.worker_start_timeout_s), **common)
        Supervisor(config, listening_sockets(config, workers)).run()
