"""The registry of served models: (name, version) -> a loaded runtime and its state.

Loading happens on worker threads; a model that fails to load is kept with state FAILED and its reason,
and never stops the others. ``get`` resolves a request's model name and optional version: without a
version, the highest version number is used.

A model from the database registry also has a ``TrafficRoute`` (``mlgate.inference.traffic``): requests without
a version go to its ``production`` version (or its canary), and a version may be named by an alias. Each handle counts
its requests in flight (``acquire``/``release``), so a rollout can wait for an old version to drain.

Seams for what attaches to a model (dynamic batching, worker processes, metrics, the prediction log):
- ``ModelHandle.executor`` is what the data plane awaits to run a batch; by default a ``ThreadExecutor``
  calling ``runtime.predict`` on a worker thread. A hook may replace it (a batcher wrapping it, a pool).
- ``ModelHook.on_load`` runs after a model loaded and before it turns READY; ``on_unload`` before the
  runtime is released. Hooks run in the order given.
- A manifest with ``instances > 0`` is loaded by worker processes (``mlgate.inference.engine`` hook), not here: its
  runtime object is built but not loaded in this process, and the hook fills in its signature. So is a model
  whose runtime says it cannot run in this process (``Runtime.own_process``, e.g. Keras on another backend).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import structlog

from mlgate.errors import ModelLoadError, ModelNotFound, ModelVersionNotFound
from mlgate.inference.traffic import TrafficRoute
from mlgate.model.manifest import ModelManifest, TensorSpec
from mlgate.model.repository import ModelSource
from mlgate.runtimes import Batch, Executor, Runtime, runtime_class

__all__ = ["Executor", "ModelHandle", "ModelHook", "ModelRegistry", "ModelState", "ThreadExecutor"]

log = structlog.get_logger("mlgate.inference.registry")


class ModelState(enum.StrEnum):
    """The life cycle of a model version: LOADING -> READY or FAILED (with a reason); UNLOADED once removed."""
    LOADING = "LOADING"
    READY = "READY"
    FAILED = "FAILED"
    UNLOADED = "UNLOADED"


class ThreadExecutor:
    """The default executor: ``runtime.predict`` on a thread of its own (one per model version in this process),
    one call at a time, so the event loop goes on serving while the model computes.

    A plain ``ThreadPoolExecutor`` of one thread and ``loop.run_in_executor``: 3-6 % more requests/s on workload T
    than anyio's shared worker threads (``anyio.to_thread``, with its capacity limiter and cancel scope per
    call), same run, ``benchmarks/ab.py`` (issue 17). A call the caller stops waiting for runs to its end on the
    thread; its answer is dropped.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlgate-model")

    async def __call__(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self.runtime.predict, batch,
                                                                parameters)

    async def close(self) -> None:
        """Let the thread end once its call (if any) returns; later calls raise RuntimeError."""
        self._thread.shutdown(wait=False)


@dataclass(eq=False)
class ModelHandle:
    """One model version as served: manifest, runtime and state (FAILED carries ``reason``)."""

    name: str
    version: str
    directory: Path
    manifest: ModelManifest | None
    state: ModelState = ModelState.LOADING
    reason: str | None = None
    runtime: Runtime | None = field(default=None, repr=False)
    executor: Executor | None = field(default=None, repr=False)
    in_flight: int = field(default=0, repr=False)
    _idle: anyio.Event | None = field(default=None, repr=False)

    def acquire(self) -> None:
        """Count a request that will use this handle (call with no ``await`` since it was looked up)."""
        self.in_flight += 1

    def release(self) -> None:
        """Count the end of a request started with ``acquire``; wakes ``drain`` when none is left."""
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no request is in flight, at most ``timeout_s``; True when drained."""
        with anyio.move_on_after(timeout_s):
            while self.in_flight > 0:
                self._idle = anyio.Event()
                await self._idle.wait()
            return True
        return self.in_flight == 0

    @property
    def ready(self) -> bool:
        """Whether the version is READY to serve."""
        return self.state is ModelState.READY

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """The input tensors as the runtime reads them (name, datatype, shape); empty until loaded."""
        return self.runtime.inputs if self.runtime else ()

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """The output tensors as the runtime gives them; empty until loaded."""
        return self.runtime.outputs if self.runtime else ()

    @property
    def platform(self) -> str:
        """The V2 ``platform``: the runtime's (e.g. ``sklearn_joblib``), else the manifest's runtime name."""
        return self.runtime.platform if self.runtime else (self.manifest.runtime if self.manifest else "")

    @property
    def labels(self) -> tuple[str, ...] | None:
        """Class labels from the manifest (V2 classification extension), if any."""
        return self.manifest.labels if self.manifest else None


def _version_key(version: str) -> tuple[int, int | str]:
    return (1, int(version)) if version.isdigit() else (0, version)


class ModelHook(Protocol):
    """Attaches behaviour to models as they load and unload (see the module docstring)."""

    async def on_load(self, handle: ModelHandle) -> None:
        """Called after the runtime loaded ``handle`` and before it is READY; may replace ``handle.executor``."""

    async def on_unload(self, handle: ModelHandle) -> None:
        """Called after ``handle`` stopped serving and its executor was closed."""


class ModelRegistry:
    """The loaded models: every served version of every model by name, with each model's traffic route.

    Not the database catalog (``mlgate.catalog``): this is what this process has in memory. ``hooks``
    (the inference engine) attach batching and worker processes as versions load.
    """
    def __init__(self, hooks: Sequence[ModelHook] = ()) -> None:
        self._models: dict[str, dict[str, ModelHandle]] = {}
        self._routes: dict[str, TrafficRoute] = {}
        self.hooks = tuple(hooks)

    def __iter__(self) -> Iterator[ModelHandle]:
        for versions in self._models.values():
            yield from versions.values()

    def names(self) -> list[str]:
        """The names of the loaded models, sorted."""
        return sorted(self._models)

    def versions(self, name: str) -> list[str]:
        """Versions of ``name``, oldest first (numeric versions compare as numbers)."""
        return sorted(self._models.get(name, {}), key=_version_key)

    def route(self, name: str) -> TrafficRoute | None:
        """The traffic route of ``name`` (production, aliases, canary, shadow), or None for a folder model."""
        return self._routes.get(name)

    def set_route(self, name: str, route: TrafficRoute | None) -> None:
        """Install (or with None, remove) the route of ``name``; its versions should be loaded first."""
        if route is None:
            self._routes.pop(name, None)
        else:
            self._routes[name] = route

    def get(self, name: str, version: str | None = None, key: str | None = None) -> ModelHandle:
        """The handle for ``name`` at ``version``, in any state.

        Without a version: the route's pick (production, or the canary for its share; ``key`` makes the
        choice sticky), else the highest version. ``version`` may also be an alias of the route.
        Raises ModelNotFound or ModelVersionNotFound (404).
        """
        versions = self._models.get(name)
        if not versions:
            raise ModelNotFound(name)
        route = self._routes.get(name)
        if version is None:
            version = route.pick(name, key) if route else max(versions, key=_version_key)
        elif version not in versions and route is not None and version in route.aliases:
            version = route.aliases[version]
        handle = versions.get(version)
        if handle is None:
            hint = ("; that version is in the registry but not served here: point an alias at it "
                    "(e.g. staging) to serve it") if route is not None and version in route.registered else ""
            raise ModelVersionNotFound(name, version, self.versions(name), hint)
        return handle

    async def load(self, sources: Iterable[ModelSource]) -> None:
        """Load every source, one at a time; failures are recorded, not raised."""
        for source in sources:
            await self.load_model(source)

    async def load_model(self, source: ModelSource) -> ModelHandle:
        """Load one model directory (on a worker thread), run the hooks, and register it.

        Never raises for a broken model: the handle comes back FAILED with its reason.
        """
        handle = ModelHandle(source.name, source.version, source.directory, source.manifest)
        self._models.setdefault(handle.name, {})[handle.version] = handle
        if source.error is not None:
            self._fail(handle, source.error)
            return handle
        runtime = await anyio.to_thread.run_sync(self._load_runtime, handle)
        if runtime is None:
            return handle
        handle.runtime = runtime
        handle.executor = ThreadExecutor(runtime)
        try:
            for hook in self.hooks:
                await hook.on_load(handle)
        except Exception as exc:  # noqa: BLE001 - a failing hook marks this model FAILED, not the server
            self._fail(handle, f"{type(exc).__name__}: {exc}")
            await self._release(handle)
            return handle
        handle.state = ModelState.READY
        log.info("model loaded", model=handle.name, version=handle.version, runtime=runtime.name,
                 directory=str(handle.directory))
        return handle

    def _load_runtime(self, handle: ModelHandle) -> Runtime | None:
        assert handle.manifest is not None
        try:
            runtime = runtime_class(handle.manifest.runtime)(handle.manifest, handle.directory)
            if handle.manifest.device != "cpu" and not runtime.cuda:
                raise ModelLoadError(f"device {handle.manifest.device!r}: the {runtime.name} runtime runs on the "
                                     "CPU only; set device = \"cpu\"")
            reason = None if handle.manifest.instances else runtime.own_process()
            if reason is not None:  # one worker process runs it (mlgate.inference.engine starts it)
                log.info("model runs in its own worker process", model=handle.name, version=handle.version,
                         reason=reason)
                handle.manifest = runtime.manifest = handle.manifest.model_copy(update={"instances": 1})
            if not handle.manifest.instances:  # else its worker processes load it (mlgate.inference.engine)
                runtime.load()
        except ModelLoadError as exc:
            self._fail(handle, exc.message)
            return None
        except Exception as exc:  # noqa: BLE001 - any failure of third-party loading code marks the model FAILED
            self._fail(handle, f"{type(exc).__name__}: {exc}")
            return None
        return runtime

    def _fail(self, handle: ModelHandle, reason: str) -> None:
        handle.state = ModelState.FAILED
        handle.reason = reason
        log.error("model failed to load", model=handle.name, version=handle.version,
                  directory=str(handle.directory), reason=reason)

    def detach(self, handle: ModelHandle) -> None:
        """Take ``handle`` out of the lookup table (new requests cannot reach it); it stays loaded."""
        versions = self._models.get(handle.name, {})
        if versions.get(handle.version) is handle:
            del versions[handle.version]
            if not versions:
                del self._models[handle.name]

    async def unload_model(self, handle: ModelHandle) -> None:
        """Run the unload hooks, close the executor, release the runtime, and forget the model."""
        if handle.state is ModelState.READY:
            for hook in reversed(self.hooks):
                await hook.on_unload(handle)
        await self._release(handle)
        handle.state = ModelState.UNLOADED
        self.detach(handle)

    async def _release(self, handle: ModelHandle) -> None:
        if handle.executor is not None:
            await handle.executor.close()
            handle.executor = None
        if handle.runtime is not None:
            await anyio.to_thread.run_sync(handle.runtime.unload)
            handle.runtime = None

    async def unload_all(self) -> None:
        """Unload every version (server shutdown)."""
        for handle in list(self):
            await self.unload_model(handle)
