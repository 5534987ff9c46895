"""Structured logging with structlog; the standard library's loggers (uvicorn's too) go through it.

Every line carries the process id (``pid``) and the ``request_id`` bound by the request-id middleware while a
request is served. Lines go to stderr and, with a log file (the setting ``log_file``), also to that file as JSON
lines (appended; several server processes may share it; reopened when log rotation moves it).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog

__all__ = ["REQUEST_ID", "configure_logging", "log_access"]

REQUEST_ID: ContextVar[str | None] = ContextVar("mlgate_request_id", default=None)
"""The id of the HTTP request being served (set by the edge): every log line written while it is set carries
it as ``request_id`` (``_add_request_id``), and code that needs the id itself (the prediction log) reads it."""

_access = structlog.get_logger("mlgate.access")
_access_std = logging.getLogger("mlgate.access")
_json_handlers: list[logging.StreamHandler[Any]] = []
"""The handlers ``configure_logging`` installed when they all write JSON lines: ``log_access`` writes to them
directly."""
_own_handlers: list[logging.Handler] = []
"""The handlers the last ``configure_logging`` installed: closed when the next call replaces them (a log file
given before would otherwise stay open)."""


def configure_logging(level: str = "info", fmt: str = "auto", file: Path | None = None) -> None:
    """Set up structlog and the root logger. ``fmt``: ``console``, ``json``, or ``auto`` (console on a tty).

    ``file``: also append every line to this file, as JSON lines (its folder is created; OSError when it cannot
    be opened)."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_pid,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(shared, renderer, fmt == "json"))
    handlers: list[logging.StreamHandler[Any]] = [handler]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.handlers.WatchedFileHandler(file, encoding="utf-8")
        to_file.setFormatter(_formatter(shared, structlog.processors.JSONRenderer(), True))
        handlers.append(to_file)
    global _json_handlers, _own_handlers
    _json_handlers = handlers if fmt == "json" else []
    root = logging.getLogger()
    root.handlers[:] = handlers
    for old in _own_handlers:
        old.close()
    _own_handlers = list(handlers)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Alembic announces its plugins and its dialect at info level on every start: keep only the migrations
    # it actually runs ("Running upgrade ...").
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    migration = logging.getLogger("alembic.runtime.migration")
    migration.filters[:] = [_only_migrations]
    # mlgate writes its own access line (the edge's); uvicorn's would be a second one per request (it logs
    # whenever its logger has handlers, including the root's through propagation).
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers[:] = []
    uvicorn_access.propagate = False


def _only_migrations(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or str(record.msg).startswith("Running ")


def _formatter(shared: list[Any], renderer: Any, json: bool) -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if json else _identity,
            renderer,
        ],
    )


_PID = os.getpid()
os.register_at_fork(after_in_child=lambda: globals().update(_PID=os.getpid()))


def _add_pid(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Name the process: with ``workers > 1`` several HTTP processes write to the same stream."""
    event["pid"] = _PID
    return event


def _add_request_id(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """The id of the request being served (``REQUEST_ID``), unless the line has one: read when a line is
    written, instead of binding it into structlog's context for every request (most write no line)."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _identity(logger: Any, method: str, event: Any) -> Any:
    return event


def log_access(method: str, path: str, status: int, duration_ms: float, request_id: str,
               **fields: str | int | None) -> None:
    """One access-log line (event ``request``; the duration in ms), at info level on logger ``mlgate.access``.

    ``fields`` are added to the line as they are: the gRPC service (``mlgate.protocols.grpc``) adds
    ``grpc_status`` (the code's name; ``status`` is then its number), ``caller``, ``client`` and ``peer``.

    With JSON logs the line is built here, with orjson, with the fields the structlog chain of
    ``configure_logging`` gives every line (``request_id``, ``level``, ``logger``, an ISO-8601 UTC
    ``timestamp``, ``pid``) and written to the same handler under its lock: the full chain (structlog, a
    stdlib LogRecord, the formatter, the standard library's JSON) was ~10 % of the CPU of a prediction.
    Otherwise (console logs, logging not configured by it, or the root logger's handlers changed since) it
    goes through structlog, which adds whatever else is bound in the request's context.
    """
    handlers = _json_handlers
    if not handlers or logging.root.handlers != handlers:  # console logs, or reconfigured since: the slow path
        _access.info("request", method=method, path=path, status=status, duration_ms=duration_ms, **fields)
        return
    if not _access_std.isEnabledFor(logging.INFO):
        return
    event = {"method": method, "path": path, "status": status, "duration_ms": duration_ms, "event": "request",
             "request_id": request_id, "level": "info", "logger": "mlgate.access",
             "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "pid": _PID}
    if fields:
        event.update(fields)
    line = orjson.dumps(event, default=str, option=orjson.OPT_APPEND_NEWLINE).decode()
    for handler in handlers:
        handler.acquire()
        try:
            if isinstance(handler, logging.handlers.WatchedFileHandler):
                handler.reopenIfNeeded()
            handler.stream.write(line)
            handler.flush()
        finally:
            handler.release()
