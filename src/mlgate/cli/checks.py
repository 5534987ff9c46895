"""The checks of ``mlgate doctor``: each looks at one thing a server needs and answers ok, skip or fail.

Each check is bounded by ``timeout_s`` and never raises: an unreachable service is a ``fail`` line naming
the address and the error, so an operator sees at once which dependency is down.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from mlgate.settings import Settings, default_examples_dir

__all__ = ["Check", "amqp_handshake", "run_checks"]

Status = Literal["ok", "skip", "fail"]


@dataclass(frozen=True)
class Check:
    """One line of ``mlgate doctor``: what was checked, whether it passed, and what was found."""
    name: str
    status: Status
    detail: str


def run_checks(settings: Settings, *, broker_url: str | None = None, timeout_s: float = 5.0) -> list[Check]:
    """Every check, in the order ``mlgate doctor`` prints them."""
    return [check_database(settings, timeout_s), check_redis(settings, timeout_s),
            check_broker(broker_url, timeout_s), check_data_dir(settings), check_repository(settings)]


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def check_database(settings: Settings, timeout_s: float) -> Check:
    """Connect, read the schema revision, compare it with this release's migrations."""
    from mlgate.db.engine import async_url
    from mlgate.db.migrate import current_revision, head_revision, known_revisions

    url = settings.effective_database_url
    shown = async_url(url).render_as_string(hide_password=True)
    try:
        current = asyncio.run(asyncio.wait_for(current_revision(url), timeout_s))
    except TimeoutError:
        return Check("database", "fail", f"{shown}: no answer within {timeout_s:g} s")
    except Exception as exc:  # noqa: BLE001 - any driver error is the answer of this check
        return Check("database", "fail", f"{shown}: {_error(exc)}")
    head = head_revision()
    if current is None:
        plan = "created at start-up" if settings.database_auto_upgrade else "run: mlgate db upgrade"
        return Check("database", "ok", f"{shown}: reachable, no schema yet ({plan})")
    if current not in known_revisions():
        return Check("database", "fail", f"{shown}: schema '{current}' is newer than this release knows ('{head}')")
    if current != head:
        plan = "upgraded at start-up" if settings.database_auto_upgrade else "run: mlgate db upgrade"
        return Check("database", "ok", f"{shown}: schema {current}, behind {head} ({plan})")
    return Check("database", "ok", f"{shown}: schema {current} (up to date)")


def check_redis(settings: Settings, timeout_s: float) -> Check:
    """PING the rate-limit storage when it is Redis."""
    storage = settings.rate_limit_storage
    if not storage.startswith(("redis://", "rediss://", "redis+")):
        return Check("redis", "skip", f"rate_limit_storage is {storage.split('://')[0]}:// (limits per process)")
    import redis

    parts = urlsplit(storage)
    where = f"{parts.hostname}:{parts.port or 6379}"
    try:
        client = redis.Redis.from_url(storage, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        try:
            client.ping()
            version = client.info("server").get("redis_version", "?")
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any client error is the answer of this check
        return Check("redis", "fail", f"{where}: {_error(exc)}")
    return Check("redis", "ok", f"{where}: PONG (Redis {version})")


AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
"""The protocol header a client sends first (AMQP 0-9-1, section 4.2.2)."""


def amqp_handshake(host: str, port: int, timeout_s: float) -> str:
    """Open TCP, send the AMQP 0-9-1 protocol header and read the server's Connection.Start frame.

    Returns the server's product and version (e.g. ``RabbitMQ 3.13.7``). Raises OSError when the port
    does not answer and ValueError when what answers is not an AMQP 0-9-1 broker. The connection is closed
    right after (brokers log it as a client that went away before logging in).
    """
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(AMQP_HEADER)
        frame = b""
        while len(frame) < 7:
            chunk = sock.recv(4096)
            if not chunk:
                raise ValueError("connection closed before Connection.Start")
            frame += chunk
        kind, channel, size = struct.unpack(">BHI", frame[:7])
        if frame.startswith(b"AMQP"):
            raise ValueError(f"broker wants another protocol version: {frame[:8]!r}")
        while len(frame) < 7 + size + 1:
            chunk = sock.recv(65536)
            if not chunk:
                raise ValueError("connection closed in the middle of Connection.Start")
            frame += chunk
    payload = frame[7:7 + size]
    class_id, method_id, major, minor = struct.unpack(">HHBB", payload[:6])
    if kind != 1 or channel != 0 or (class_id, method_id) != (10, 10):
        raise ValueError(f"not an AMQP Connection.Start frame (type {kind}, class {class_id}, method {method_id})")
    if (major, minor) != (0, 9):
        raise ValueError(f"AMQP {major}-{minor}, not 0-9-1")
    properties = payload[6:]
    found = {}
    for key in (b"product", b"version"):
        at = properties.find(bytes([len(key)]) + key + b"S")
        if at >= 0:
            start = at + 1 + len(key) + 1
            (length,) = struct.unpack(">I", properties[start:start + 4])
            found[key] = properties[start + 4:start + 4 + length].decode("utf-8", "replace")
    return f"{found.get(b'product', 'AMQP broker')} {found.get(b'version', '')}".strip()


def check_broker(broker_url: str | None, timeout_s: float) -> Check:
    """TCP and the AMQP 0-9-1 handshake of the job broker (no login: the server's credentials stay out)."""
    if not broker_url:
        return Check("broker", "skip", "no job broker (--broker-url / MLGATE_JOBS_BROKER): jobs run in the server")
    parts = urlsplit(broker_url)
    if parts.scheme in ("redis", "rediss"):
        return Check("broker", "skip", "the job broker is Redis: see the redis line for the rate-limit storage, "
                     "or run `redis-cli -u URL ping` against the broker's")
    if parts.scheme not in ("amqp", "amqps"):
        return Check("broker", "fail", f"{parts.scheme}:// is not an AMQP URL (amqp://user:password@host:port/)")
    host, port = parts.hostname or "127.0.0.1", parts.port or (5671 if parts.scheme == "amqps" else 5672)
    if parts.scheme == "amqps":
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            return Check("broker", "fail", f"{host}:{port}: {_error(exc)}")
        return Check("broker", "ok", f"{host}:{port}: TCP open (TLS handshake not checked)")
    try:
        server = amqp_handshake(host, port, timeout_s)
    except (OSError, ValueError, struct.error) as exc:
        return Check("broker", "fail", f"{host}:{port}: {_error(exc)}")
    return Check("broker", "ok", f"{host}:{port}: AMQP 0-9-1 handshake ({server})")


def check_data_dir(settings: Settings) -> Check:
    """The data directory exists and is writable, or can be created."""
    folder = settings.data_dir
    if folder.is_dir():
        if os.access(folder, os.W_OK):
            return Check("data directory", "ok", f"{folder}: writable")
        return Check("data directory", "fail", f"{folder}: not writable by this user")
    if folder.exists():
        return Check("data directory", "fail", f"{folder}: exists and is not a directory")
    parent = next((p for p in folder.parents if p.exists()), Path("/"))
    if parent.is_dir() and os.access(parent, os.W_OK):
        return Check("data directory", "ok", f"{folder}: does not exist yet (created at start-up)")
    return Check("data directory", "fail", f"{folder}: does not exist and {parent} is not writable")


def check_repository(settings: Settings) -> Check:
    """The model repository scans, and every model directory's manifest is valid."""
    from mlgate.model.repository import scan_repository

    root = settings.model_repository
    if root is None:
        return Check("model repository", "skip",
                     f"not set: serves the example models (built on first use in {default_examples_dir()})")
    if not root.is_dir():
        return Check("model repository", "fail", f"{root}: not a directory")
    try:
        sources = scan_repository(root)
    except Exception as exc:  # noqa: BLE001 - a repository that cannot be read is the answer of this check
        return Check("model repository", "fail", f"{root}: {_error(exc)}")
    broken = [f"{s.name}: {s.error}" for s in sources if s.error is not None]
    missing = [f"{s.name}: artifact {s.manifest.artifact!r} missing" for s in sources
               if s.error is None and s.manifest is not None and not (s.directory / s.manifest.artifact).exists()]
    if broken or missing:
        return Check("model repository", "fail", f"{root}: " + "; ".join([*broken, *missing])[:500])
    if not sources:
        return Check("model repository", "ok", f"{root}: no model directories (serves the registry only)")
    names = sorted({s.name for s in sources})
    return Check("model repository", "ok", f"{root}: {len(sources)} model(s): {', '.join(names)}"[:300])
