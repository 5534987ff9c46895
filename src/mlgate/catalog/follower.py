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

import structlog

from mlgate.db.engine import Database
from mlgate.db.notify import listen
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
        await listen(self.database, NOTIFY_CHANNEL, lambda _payload: self._wake.set(), on_state=self._listening)

    def _listening(self, listening: bool) -> None:
        self.listening = listening
        if listening:
            self._wake.set()  # changes made while we were not listening

    async def close(self) -> None:
        """Stop following; waits for the tasks to end."""
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
