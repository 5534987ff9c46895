"""WorkerPool: an Executor that runs a model in N worker processes and restarts the ones that die.

Each worker is a fresh interpreter (``python -m mlgate.workers.main``) that loads the model itself, so its
memory is the model's alone and CPU-bound inference runs on every core while the server's event loop only
moves bytes. A batch goes to an idle worker; one supervisor task per slot restarts its worker when it dies
(at once the first time, then backing off up to 10 s while it keeps dying young). The request a dying
worker held fails with WorkerDied (503); requests wait for a live worker meanwhile, up to their deadline.
With ``timeout_s`` (the model's ``timeout_ms``), a batch still computing past it has its worker killed, so the
work really stops and the instance serves again once restarted; its callers get DeadlineExceeded (504).

Callers should not run more than ``instances`` batches at once (the dynamic batcher in front sees to it);
extra calls simply wait for a worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from mlgate.errors import DeadlineExceeded, ModelLoadError
from mlgate.metrics import ModelMetrics
from mlgate.model.manifest import ModelManifest, TensorSpec
from mlgate.runtimes.base import Batch, split_progress
from mlgate.workers.process import WorkerProcess

__all__ = ["WorkerPool"]

log = structlog.get_logger("mlgate.workers")

_YOUNG_S = 10.0  # a worker that dies sooner than this after starting counts towards the back-off
_MAX_BACKOFF_S = 10.0


class WorkerPool:
    """``instances`` worker processes of one model version behind one executor: each batch goes to a free
    process; a process that dies is restarted and its batch fails with WorkerDied (503).
    """
    def __init__(self, manifest: ModelManifest, directory: Path, instances: int, *, start_timeout_s: float = 120.0,
                 metrics: ModelMetrics | None = None, timeout_s: float | None = None) -> None:
        self.manifest = manifest
        self.timeout_s = timeout_s
        """The model's time limit per batch: past it the worker computing the batch is killed (and restarted)."""
        self.directory = directory
        self.instances = instances
        self.start_timeout_s = start_timeout_s
        self.metrics = metrics
        self.name = f"{manifest.name}:{manifest.version}"
        self.inputs: tuple[TensorSpec, ...] = ()
        self.outputs: tuple[TensorSpec, ...] = ()
        self._idle: asyncio.Queue[WorkerProcess] = asyncio.Queue()
        self._workers: set[WorkerProcess] = set()
        self._supervisors: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return sorted(worker.pid for worker in self._workers if worker.alive)

    async def start(self) -> None:
        """Start every worker and wait until each loaded the model; fill ``inputs``/``outputs`` from them.

        Raises ModelLoadError (with the first worker's reason) if any fails; none is left running then.
        """
        starts = [WorkerProcess.start(self.manifest, self.directory, timeout_s=self.start_timeout_s)
                  for _ in range(self.instances)]
        results = await asyncio.gather(*starts, return_exceptions=True)
        workers = [r for r in results if isinstance(r, WorkerProcess)]
        failures = [r for r in results if not isinstance(r, WorkerProcess)]
        if failures:
            await asyncio.gather(*(worker.stop(0) for worker in workers))
            raise failures[0]
        hello = workers[0].ready
        self.inputs = tuple(TensorSpec.model_validate(spec) for spec in hello["inputs"])
        self.outputs = tuple(TensorSpec.model_validate(spec) for spec in hello["outputs"])
        self._workers.update(workers)
        loop = asyncio.get_running_loop()
        self._supervisors = [loop.create_task(self._supervise(worker)) for worker in workers]
        log.info("worker processes started", model=self.name, pids=[w.pid for w in workers])

    async def __call__(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        """Run ``batch`` on the next idle worker. Raises WorkerDied (503) if that worker dies meanwhile."""
        while True:
            worker = await self._idle.get()
            if worker.alive:
                break
        parameters = split_progress(parameters)[0]  # a callback cannot cross processes
        if self.timeout_s is None:
            return await worker.infer(batch, parameters)
        limit = asyncio.timeout(self.timeout_s)
        try:
            async with limit:
                return await worker.infer(batch, parameters)
        except TimeoutError:
            if not limit.expired():
                raise
            # The work must stop, not only the wait: kill the process; its supervisor starts a fresh one.
            log.warning("worker process over the model's time limit; killing it", model=self.name, pid=worker.pid,
                        timeout_s=self.timeout_s)
            if self.metrics is not None:
                self.metrics.worker_restarts.inc()
            await worker.kill()
            raise DeadlineExceeded(f"model '{self.name}' did not answer within {self.timeout_s * 1000:g} ms (its "
                                   "timeout_ms); the worker process computing it was stopped") from None

    async def close(self) -> None:
        """Stop every worker (each finishes its batch first, up to 5 s) and the supervisors."""
        self._closing = True
        await asyncio.gather(*(worker.stop() for worker in list(self._workers)))
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)

    async def _supervise(self, worker: WorkerProcess | None) -> None:
        young_deaths = 0
        while not self._closing:
            if worker is not None:
                started = time.monotonic()
                self._workers.add(worker)
                self._idle.put_nowait(worker)
                await worker.serve(self._idle.put_nowait)
                self._workers.discard(worker)
                if self._closing:
                    return
                young_deaths = young_deaths + 1 if time.monotonic() - started < _YOUNG_S else 1
                log.warning("worker process died; restarting it", model=self.name, pid=worker.pid,
                            exit_status=worker.returncode)
                if self.metrics is not None:
                    self.metrics.worker_restarts.inc()
            if young_deaths > 1:
                await asyncio.sleep(min(0.5 * 2 ** (young_deaths - 2), _MAX_BACKOFF_S))
            try:
                worker = await WorkerProcess.start(self.manifest, self.directory, timeout_s=self.start_timeout_s)
            except ModelLoadError as exc:
                log.error("worker process could not be restarted", model=self.name, reason=exc.message)
                worker = None
                young_deaths += 1
            else:
                log.info("worker process restarted", model=self.name, pid=worker.pid)
