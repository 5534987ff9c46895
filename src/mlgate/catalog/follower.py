"""Replicas agree: every server applies registry changes made through any of them, within about a second.

Each change appends a row to ``registry_changes``; on PostgreSQL it also sends ``NOTIFY mlgate_registry``.
The follower listens on that channel (a dedicated asyncpg connection, reconnected when lost) and wakes the
sync at once; independently it polls the highest change id every ``registry_poll_interval_s``, which is all
it does on SQLite and what keeps it right when a notification is missed or the listener is down.
Identity changes (``mlgate.auth.store``) append to the same table, so the same follower clears every
server's credential cache (``mlgate.auth.cache``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from mlgate.db.engine import Database
from mlgate.db.queries.catalog import NOTIFY_CHANNEL
from mlgate.errors import MlgateError

__all__ = ["ChangeFollower"]

log = structlog.get_logger("mlgate.catalog.follower")


class ChangeFollower:
    """Calls ``apply()`` whenever the catalog may have changed (notification or poll)."""

    def __init__(self, database: Database, apply: Callable[[], Awaitable[bool]], *, poll_interval_s: float) -> None:
        self.database = database
        self.apply = apply
        self.poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = False
        self._stopping = False

    def start(self) -> None:
        """Start polling the catalog (and, on PostgreSQL, listening for its notifications)."""
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._follow(), name="registry-follower"))
        if not self.database.is_sqlite:
            self._tasks.append(loop.create_task(self._listen(), name="registry-listener"))

    async def _follow(self) -> None:
        failing = False
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            self._wake.clear()
            if self._stopping:
                return
            try:
                if await self.apply():
                    log.info("registry change applied")
                if failing:
                    log.info("registry database reachable again")
                failing = False
            except MlgateError as exc:
                if not failing:
                    log.warning("registry sync failed; serving goes on with the models loaded", error=exc.message)
                failing = True
            except Exception:  # noqa: BLE001 - the follower must outlive any one failed sync
                log.exception("registry sync failed")

    async def _listen(self) -> None:
        import asyncpg

        url = self.database.url.set(drivername="postgresql").render_as_string(hide_password=False)
        backoff = 0.5
        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(url, timeout=5)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, lambda *_args: self._wake.set())
                self.listening = True
                backoff = 0.5
                self._wake.set()  # changes made while we were not listening
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - asyncpg and OS errors alike: retry, polling covers us
                log.debug("registry listener disconnected", error=f"{type(exc).__name__}: {exc}")
            finally:
                self.listening = False
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), 2)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def close(self) -> None:
        """Stop following; waits for the tasks to end."""
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
