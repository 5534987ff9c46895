"""PostgreSQL's LISTEN/NOTIFY: wake a process at once when another one changed the database.

``listen`` holds a dedicated asyncpg connection (not one of the pool's: a listening connection must stay
open) that LISTENs on one channel, and reconnects with backoff (0.5 s doubling to 5 s) when it is lost.
``notify`` sends on a channel inside the caller's transaction, so the notification goes out only if the
change commits (PostgreSQL's NOTIFY semantics). Callers poll as well: a notification sent while nobody
listened is lost. Nothing here runs on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mlgate.db.engine import Database

__all__ = ["listen", "notify"]

log = structlog.get_logger("mlgate.db.notify")


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    """``pg_notify(channel, payload)`` in ``session``'s transaction (PostgreSQL only; a no-op elsewhere).
    ``payload``: at most 8,000 bytes (PostgreSQL's limit)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(channel, payload)))


async def listen(database: Database, channel: str, on_notify: Callable[[str], None],
                 on_state: Callable[[bool], None] = lambda _listening: None) -> None:
    """Until cancelled: call ``on_notify(payload)`` for each notification on ``channel``; ``on_state(True)``
    once listening (changes made before may have been missed: read again), ``on_state(False)`` when the
    connection is lost (it is then opened again)."""
    import asyncpg

    url = database.url.set(drivername="postgresql").render_as_string(hide_password=False)
    backoff = 0.5
    while True:
        connection: Any = None
        try:
            connection = await asyncpg.connect(url, timeout=5)
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _c, lost=lost: lost.set())
            await connection.add_listener(channel, lambda _c, _pid, _channel, payload: on_notify(payload))
            backoff = 0.5
            on_state(True)
            await lost.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - asyncpg and OS errors alike: retry; the callers poll too
            log.debug("listener disconnected", channel=channel, error=f"{type(exc).__name__}: {exc}")
        finally:
            on_state(False)
            if connection is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), 2)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 5.0)
