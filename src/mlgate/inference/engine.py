"""The inference engine: a registry hook that puts each model's queue, batcher and workers in place.

On load, a model's executor becomes::

    DynamicBatcher (bounded queue, merging, metrics)  ->  WorkerPool (manifest instances = N > 0)
                                                      or  ThreadExecutor (in this process, instances = 0)

so every request waits in one bounded queue per model version, and at most one batch per instance runs
at a time. A model whose manifest says ``required = true`` is warmed (one request of zeros,
``mlgate.inference.warmup``) before it becomes READY, since the server's readiness waits for it. A model
with ``instances > 0`` is loaded by its workers, not in the server process (the registry leaves its runtime
unloaded); its signature comes from the first worker's report.
"""

from __future__ import annotations

import time

from mlgate.inference.batching import Clock, DynamicBatcher
from mlgate.inference.registry import Executor, ModelHandle
from mlgate.inference.warmup import warm
from mlgate.metrics import EngineMetrics
from mlgate.settings import Settings
from mlgate.workers.pool import WorkerPool

__all__ = ["InferenceEngine"]


class InferenceEngine:
    """ModelHook: wraps each loaded model's executor (see the module docstring)."""

    def __init__(self, settings: Settings, metrics: EngineMetrics, *, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock

    async def on_load(self, handle: ModelHandle) -> None:
        """Put ``handle`` behind its dynamic batcher: on its in-process executor, or on a pool of ``instances``
        worker processes (whose tensor specs then replace the in-process runtime's).
        """
        manifest = handle.manifest
        assert manifest is not None and handle.executor is not None
        metrics = self.metrics.model(handle.name, handle.version)
        inner: Executor = handle.executor
        concurrency = 1
        if manifest.instances:
            limit_ms = manifest.timeout_ms if manifest.timeout_ms is not None else self.settings.request_timeout_ms
            pool = WorkerPool(manifest, handle.directory, manifest.instances,
                              start_timeout_s=self.settings.worker_start_timeout_s, metrics=metrics,
                              timeout_s=limit_ms / 1000.0)
            await pool.start()
            if handle.runtime is not None:
                handle.runtime.inputs, handle.runtime.outputs = pool.inputs, pool.outputs
            await inner.close()
            inner, concurrency = pool, manifest.instances
        batching = manifest.batching
        handle.executor = DynamicBatcher(
            inner, max_batch_size=batching.max_batch_size, max_queue_delay_ms=batching.max_queue_delay_ms,
            preferred_batch_sizes=batching.preferred_batch_sizes,
            max_queue_size=batching.max_queue_size or self.settings.max_queue_size,
            concurrency=concurrency, metrics=metrics, clock=self.clock, name=f"{handle.name}:{handle.version}")
        if manifest.required:
            await warm(handle)

    async def on_unload(self, handle: ModelHandle) -> None:
        """Forget the model's metric series (its batcher and workers were closed by the registry)."""
        self.metrics.forget(handle.name, handle.version)
