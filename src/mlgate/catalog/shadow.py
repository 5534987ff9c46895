"""Shadow traffic: a copy of each successful request to a model, sent to its shadow version, never answered.

A model's route (``mlgate.inference.traffic``) may name a shadow version. ``ShadowTraffic.observe`` is a data
plane observer: after a request answered 200 it runs the same inputs and parameters on the shadow version in
the background and hands the shadow's call to ``record`` (the prediction log, marked ``shadow``). At most
``shadow_max_in_flight`` shadow requests run at once; past that they are skipped and counted in
``mlgate_shadow_skipped_total``. A shadow that fails or is not ready never affects the caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from prometheus_client import CollectorRegistry, Counter

from mlgate.inference.dataplane import Call

__all__ = ["ShadowTraffic"]

log = structlog.get_logger("mlgate.catalog.shadow")

Record = Callable[[Call, int, float], None]
"""Told about each shadow call when it ends: the call, its status and its latency in ms."""


class ShadowTraffic:
    """Copies of served requests to shadow versions. ``max_in_flight``: shadow requests running at once."""

    def __init__(self, max_in_flight: int, metrics: CollectorRegistry | None = None,
                 record: Record | None = None) -> None:
        self.max_in_flight = max_in_flight
        self.record = record
        self.skipped = Counter("mlgate_shadow_skipped", "Shadow requests skipped: too many in flight.",
                               registry=metrics)
        self._tasks: set[asyncio.Task[None]] = set()

    def observe(self, call: Call, status: int, latency_ms: float) -> None:
        """Data plane observer: send a copy of ``call`` to its model's shadow version, if it has one."""
        plane = call.plane
        route = plane.registry.route(call.handle.name)
        if status != 200 or route is None or route.shadow is None or call.inputs is None:
            return
        if route.shadow == call.handle.version:
            return
        if len(self._tasks) >= self.max_in_flight:
            self.skipped.inc()
            return
        try:
            handle = plane.model(call.handle.name, route.shadow)
        except Exception:  # noqa: BLE001 - a shadow that is not ready is skipped, never the caller's problem
            self.skipped.inc()
            return
        handle.acquire()
        shadow = Call(plane, handle, call.caller)
        task = asyncio.get_running_loop().create_task(self._run(shadow, call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, shadow: Call, original: Call) -> None:
        status = 200
        try:
            assert original.inputs is not None
            await shadow.infer(original.inputs, original.parameters)
        except Exception as exc:  # noqa: BLE001 - shadow answers are logged, never returned or raised
            status = int(getattr(exc, "status", 500))
        finally:
            shadow.handle.release()
        if self.record is not None:
            self.record(shadow, status, (time.perf_counter() - shadow.started) * 1000)

    async def close(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` seconds for the shadow requests still running."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)
