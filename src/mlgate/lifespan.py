"""The app's lifespan: build the server's one state object (``ServerState``) at start-up, close it at shutdown.

In order: migrate the database (``database_auto_upgrade``), open it, build security and the first admin, scan
and load the model repository (the examples when none is configured), compose the request observers (the
prediction log's recorder, shadow traffic) into the data plane, start the catalog's control plane (registry
versions, rollouts, the replica follower) and the jobs (``mlgate.jobs``), then freeze the start-up heap out of
the cyclic GC and make its young generation larger (``GC_THRESHOLDS``). Shutdown closes in reverse: jobs
(running ones go back to the queue), control plane (shadow requests, rollouts, prediction-log flush), models,
limits, database.
Everything that composes another object is built here and passed in; nothing is attached afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import structlog

from mlgate import tracing
from mlgate.auth.authenticator import AuthMetrics
from mlgate.auth.service import build_security, ensure_first_admin, registry_policies
from mlgate.catalog.control import ControlPlane
from mlgate.catalog.recording import CallRecorder
from mlgate.catalog.shadow import ShadowTraffic
from mlgate.db.engine import Database
from mlgate.db.migrate import upgrade
from mlgate.inference.cache import ResponseCache
from mlgate.inference.dataplane import DataPlane, Observer, Stopping
from mlgate.inference.registry import ModelRegistry
from mlgate.jobs.service import JobService
from mlgate.memory import release_freed_heap
from mlgate.metrics import EngineMetrics
from mlgate.model.examples import ensure_examples
from mlgate.model.repository import group_by_name, scan_repository
from mlgate.predlog.writer import PredictionLog
from mlgate.protocols.state import ServerState
from mlgate.ratelimit.limiter import RateLimitMetrics
from mlgate.settings import Settings, default_examples_dir

__all__ = ["serve_state"]

log = structlog.get_logger("mlgate.lifespan")

GC_THRESHOLDS = (10_000, 10, 10)
"""The cyclic GC's thresholds once the server is up (``gc.set_threshold``; CPython's default is 700, 10, 10).
Each request allocates and frees a few hundred containers, so the young generation passed 700 many times a
second, and each pass walked the objects of every request in flight. Workload T, one HTTP process, 8 s of wrk
(``gc.callbacks`` timing): 0.35 s collecting in 1,127 young passes at 64 connections and 0.96 s in 1,596 at
512; at 10,000: 0.005 s (2 passes) and 0.095 s (9) (benchmarks/RESULTS.md). Garbage in reference cycles waits a
little longer; everything else is freed by reference counting as before."""


@asynccontextmanager
async def serve_state(settings: Settings, registry: ModelRegistry, metrics: EngineMetrics,
                      stopping: Stopping | None = None,
                      only: Callable[[str], bool] | None = None) -> AsyncIterator[ServerState]:
    """The ``ServerState`` of a server serving ``registry``, open for the duration of the ``async with``;
    ``stopping`` is the server's stop signal (``mlgate.server`` drains on SIGTERM) that readiness reads;
    ``only``: which models to load (``mlgate worker --model``), by name: the repository folder's and the
    registry's."""
    tracing.configure(settings)  # on only when an OTLP endpoint is configured (mlgate.tracing)
    database_url = settings.effective_database_url
    if settings.database_auto_upgrade:
        await anyio.to_thread.run_sync(upgrade, database_url)
    database = Database(database_url)
    security = build_security(settings, database, lookup=registry_policies(registry), names=registry.names,
                              auth_metrics=AuthMetrics(metrics.registry),
                              limit_metrics=RateLimitMetrics(metrics.registry))
    await ensure_first_admin(settings, security.store)
    root = settings.model_repository
    if root is None:
        root = default_examples_dir()
        ensure_examples(root)
    log.info("loading model repository", repository=str(root))
    sources = scan_repository(root)
    if only is not None:
        sources = [source for source in sources if only(source.name)]
    await registry.load(sources)

    predlog = recorder = None
    observers: list[Observer] = []
    if settings.prediction_log:
        predlog = PredictionLog(
            database, buffer_size=settings.prediction_log_buffer, batch_size=settings.prediction_log_batch,
            interval_s=settings.prediction_log_interval_s, default_sample_rate=settings.prediction_log_sample_rate,
            metrics=metrics.registry)
        recorder = CallRecorder(predlog)
        observers.append(recorder.observe)
    shadow = ShadowTraffic(settings.shadow_max_in_flight, metrics.registry,
                           record=recorder.shadow if recorder is not None else None)
    observers.append(shadow.observe)
    cache = ResponseCache(settings.cache_storage, metrics)  # used by models with a manifest [cache] only
    plane = DataPlane(settings, registry, metrics, observers=observers, stopping=stopping, cache=cache)
    control = ControlPlane(settings, database, plane, predlog=predlog, recorder=recorder, shadow=shadow,
                           folder_sources=group_by_name(sources),
                           on_change=[security.authenticator.clear_cache],  # identity changes of other replicas
                           only=only)
    await control.start()
    jobs = JobService(settings, database, plane)  # the embedded runner, or the broker's sending side
    await jobs.start()
    plane.loaded = True
    log.info("models loaded", ready=sum(handle.ready for handle in registry), total=len(list(registry)))
    release_freed_heap()  # collects, and gives the heap that loading freed back to the system
    gc.freeze()  # keep the cyclic GC off the objects of start-up (frameworks, models)
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield ServerState(settings=settings, dataplane=plane, database=database, security=security, control=control,
                          jobs=jobs)
    finally:
        await jobs.close()  # running jobs go back to the queue, for the next start or another runner
        await control.close()
        await registry.unload_all()
        await cache.aclose()
        await security.limits.aclose()
        await database.dispose()
        tracing.flush()  # the spans still buffered, before the process exits
        gc.set_threshold(*thresholds)  # as it was (an app served inside another program, or a test)
