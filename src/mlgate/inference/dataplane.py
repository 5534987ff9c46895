"""The transport-free core: health, metadata and inference, called by every protocol.

A protocol module parses its wire format into numpy arrays (``mlgate.codecs``), calls ``DataPlane.infer``
and encodes the result. Everything that is the same for V2, V1 and later protocols lives here: looking up
the model, checking the inputs against its signature, handing them to the model's executor (its queue,
batcher and workers: ``mlgate.inference.engine``) under the request's deadline, turning a model's own exception into
ModelError, and counting requests by model and status (``mlgate.metrics``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
import structlog

from mlgate import __version__, tracing
from mlgate.datatypes import FLOAT_DATATYPES
from mlgate.errors import DeadlineExceeded, InvalidInput, MlgateError, ModelError, ModelNotReady
from mlgate.inference.cache import ResponseCache
from mlgate.inference.registry import ModelHandle, ModelRegistry, ModelState
from mlgate.metrics import EngineMetrics
from mlgate.settings import Settings
from mlgate.types import MetadataTensor, ModelMetadata, ServerMetadata

__all__ = ["EXTENSIONS", "Call", "DataPlane", "Observer", "Stopping"]

log = structlog.get_logger("mlgate.inference.dataplane")

EXTENSIONS = ["classification", "binary_tensor_data"]
"""V2 protocol extensions this server implements (reported by ``GET /v2``)."""


@dataclass(eq=False)
class Call:
    """One request being served by ``handle``: what the observers (prediction log, shadow) see after it.

    ``DataPlane.serving`` makes one; as an async context manager it holds ``handle`` (its in-flight count)
    from entry to exit, then tells the data plane's observers the outcome: 200, or the status of the
    MlgateError that left the block (500 for any other exception), which it keeps in ``error``.
    """

    plane: DataPlane
    handle: ModelHandle
    caller: str | None = None
    started: float = field(default_factory=time.perf_counter)
    parameters: Mapping[str, Any] | None = None
    inputs: Mapping[str, np.ndarray] | None = None
    outputs: Mapping[str, np.ndarray] | None = None
    error: MlgateError | None = None
    """The error the request was answered with (an unexpected exception becomes a generic MlgateError)."""

    @property
    def batch_size(self) -> int | None:
        """The rows of the call's first input (its batch size), or None before inputs are known or for a scalar."""
        if not self.inputs:
            return None
        first = next(iter(self.inputs.values()))
        return int(first.shape[0]) if first.ndim else None

    async def infer(
        self, inputs: Mapping[str, np.ndarray], parameters: Mapping[str, Any] | None = None,
        *, timeout_ms: float | None = None, admission: bool = True, cache: bool = True,
    ) -> dict[str, np.ndarray]:
        """``DataPlane.infer`` on this call's handle, keeping inputs and outputs for the observers."""
        self.inputs, self.parameters = inputs, parameters
        outputs = await self.plane.infer(self.handle, inputs, parameters, timeout_ms=timeout_ms, admission=admission,
                                         cache=cache)
        self.outputs = outputs
        return outputs

    async def __aenter__(self) -> Call:
        self.handle.acquire()
        if tracing.active():  # the request's span says which version answered (canary, alias)
            tracing.annotate({"mlgate.model": self.handle.name, "mlgate.model_version": self.handle.version})
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        self.handle.release()
        if exc is not None:
            self.error = exc if isinstance(exc, MlgateError) else MlgateError("internal server error")
        status = 200 if self.error is None else int(self.error.status)
        self.plane.observe(self, status, (time.perf_counter() - self.started) * 1000)


class Stopping:
    """Whether this server was told to stop (SIGTERM): made by ``create_app`` before the data plane exists, so
    the process's signal handler (``mlgate.server``) and the data plane's readiness share it."""

    def __init__(self) -> None:
        self.draining = False

    def drain(self) -> None:
        """From now on, not ready (``/v2/health/ready`` says no); serving goes on."""
        if not self.draining:
            log.info("draining: not ready any more, still serving")
        self.draining = True


Observer = Callable[[Call, int, float], None]
"""Called after each request with the call, its HTTP status and its latency in ms; must not block."""


def _dims(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


class DataPlane:
    """The transport-free request path: health, metadata and inference on the loaded models (``registry``).

    Every protocol (V2, V1, OpenAI, later gRPC and jobs) parses its wire format, then calls ``serving`` and
    ``Call.infer``; ``observers`` (prediction log, shadow traffic; composed by the lifespan) are told the
    outcome of each call. Errors are mlgate's (``mlgate.errors``), each with its HTTP status.
    """

    def __init__(self, settings: Settings, registry: ModelRegistry, metrics: EngineMetrics | None = None, *,
                 observers: Sequence[Observer] = (), stopping: Stopping | None = None,
                 cache: ResponseCache | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = metrics if metrics is not None else EngineMetrics()
        self.loaded = False
        """Set once the model repository has been loaded (successfully or not) at start-up."""
        self.stopping = stopping if stopping is not None else Stopping()
        """Set when the server was told to stop (SIGTERM): not ready any more, still serving."""
        self.observers = tuple(observers)
        """Told about every request served through ``serving`` (prediction log, shadow traffic)."""
        self.cache = cache
        """The response cache of models with a manifest ``[cache]`` (None: no caching)."""

    # -- health and metadata ------------------------------------------------------------------------

    def live(self) -> bool:
        """Whether the server process is alive (V2 ``/v2/health/live``): always True once it answers."""
        return True

    def ready(self) -> bool:
        """Whether a load balancer should send requests here (GET /v2/health/ready).

        False until loading finished, and from the moment the server is told to stop (``drain``). Every
        model whose manifest says ``required = true`` must be READY (loaded and warmed: a required model
        that failed keeps the server out of rotation); with ``strict_readiness``, every model must be.
        """
        if not self.loaded or self.stopping.draining:
            return False
        if self.settings.strict_readiness:
            return all(handle.ready for handle in self.registry)
        return all(handle.ready for handle in self.registry if handle.manifest and handle.manifest.required)

    @property
    def draining(self) -> bool:
        """Whether the server was told to stop (``Stopping.drain``)."""
        return self.stopping.draining

    def drain(self) -> None:
        """Stop reporting ready; requests are still served (the server stops once the drain period is over)."""
        self.stopping.drain()

    def server_metadata(self) -> ServerMetadata:
        """V2 server metadata: name ``mlgate``, this version, and the protocol extensions served (``EXTENSIONS``)."""
        return ServerMetadata(name="mlgate", version=__version__, extensions=list(EXTENSIONS))

    def model_status(self, name: str, version: str | None = None) -> ModelHandle:
        """The model in whatever state it is; ModelNotFound / ModelVersionNotFound (404) if unknown."""
        return self.registry.get(name, version)

    def model(self, name: str, version: str | None = None, key: str | None = None, *,
              explain: bool = False) -> ModelHandle:
        """The model, which must be READY: else ModelNotReady (503). ``key``: sticky canary routing.

        ``explain``: the error gives the reason a FAILED model did not load (for callers allowed to deploy
        it); otherwise it says that the reason is in the server log.
        """
        handle = self.registry.get(name, version, key)
        if handle.state is not ModelState.READY:
            if handle.state is ModelState.FAILED:
                detail = f"failed to load: {handle.reason}" if explain and handle.reason else (
                    "failed to load; the server log says why")
            else:
                detail = handle.state.value.lower()
            raise ModelNotReady(f"model '{handle.name}' version '{handle.version}' is not ready ({detail})")
        return handle

    def model_metadata(self, name: str, version: str | None = None, *, explain: bool = False) -> ModelMetadata:
        """The V2 metadata of a READY model; ModelNotReady (503) otherwise, with the reason when ``explain``."""
        handle = self.model(name, version, explain=explain)
        return ModelMetadata(
            name=handle.name,
            versions=self.registry.versions(handle.name),
            platform=handle.platform,
            inputs=[MetadataTensor(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in handle.inputs],
            outputs=[MetadataTensor(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in handle.outputs],
        )

    # -- inference ----------------------------------------------------------------------------------

    def timeout_ms(self, handle: ModelHandle, requested_ms: float | None = None) -> float:
        """The request's timeout in ms: the manifest's ``timeout_ms`` or else the ``request_timeout_ms``
        setting, lowered (never raised) by ``requested_ms`` (header X-Request-Timeout-Ms)."""
        manifest_ms = handle.manifest.timeout_ms if handle.manifest else None
        limit = manifest_ms if manifest_ms is not None else self.settings.request_timeout_ms
        return min(limit, requested_ms) if requested_ms is not None else limit

    def serving(
        self, name: str, version: str | None = None, *, caller: str | None = None, key: str | None = None
    ) -> Call:
        """Look up the model for one request; use the answer as ``async with plane.serving(...) as call:``,
        which holds the model until the request is answered.

        The lookup and the in-flight count happen together (no ``await`` between the lookup here and
        ``Call.__aenter__``), so a rollout that moves traffic away from a version and then waits for it to
        drain never unloads it under a request. Observers are told the outcome when the block exits.
        Raises what ``model`` raises (404, 503).
        """
        return Call(self, self.model(name, version, key), caller)

    def observe(self, call: Call, status: int, latency_ms: float) -> None:
        """Tell every observer about a finished call; an observer's bug is logged, never raised."""
        for observer in self.observers:
            try:
                observer(call, status, latency_ms)
            except Exception:  # noqa: BLE001 - an observer's bug must not fail the request
                log.exception("request observer failed", model=call.handle.name)

    async def infer(
        self, handle: ModelHandle, inputs: Mapping[str, np.ndarray], parameters: Mapping[str, Any] | None = None,
        *, timeout_ms: float | None = None, admission: bool = True, cache: bool = True,
    ) -> dict[str, np.ndarray]:
        """Run ``handle``'s model on ``inputs`` (``{name: [batch, ...]}``, already of the right dtype).

        ``timeout_ms`` is the caller's timeout (header X-Request-Timeout-Ms); it can only lower the
        model's (see ``timeout_ms``). Returns ``{output name: [batch, ...]}``. Raises InvalidInput (400)
        for missing inputs, shapes that do not match the model's, unequal batch sizes and NaN/Infinity
        where the model takes none; ModelError (500) when the model raises or answers with the wrong batch
        size; QueueFull, WorkerDied, BatcherStopped (503) from the engine; DeadlineExceeded (504). With
        ``admission`` (synchronous requests; jobs wait instead), Overloaded (503 with Retry-After) at once when
        the model's queue would make the request miss its timeout (``DynamicBatcher.admit``). A model with a
        manifest ``[cache]`` answers identical requests from the response cache (``cache=False``:
        ``Cache-Control: no-cache``, computed and not stored; ``mlgate.inference.cache``).
        """
        try:
            config = handle.manifest.cache if handle.manifest is not None else None
            key = None
            if cache and self.cache is not None and config is not None and config.enabled:
                self._check(handle, inputs)
                key = self.cache.key(handle.name, handle.version, inputs, parameters)
            if key is not None and self.cache is not None and config is not None:
                outputs = await self.cache.get_or_compute(
                    handle.name, handle.version, key, ttl_s=config.ttl_s, max_entries=config.max_entries,
                    compute=lambda: self._infer(handle, inputs, parameters, timeout_ms, admission))
            else:
                outputs = await self._infer(handle, inputs, parameters, timeout_ms, admission)
        except MlgateError as exc:
            self.metrics.request(handle.name, handle.version, int(exc.status))
            raise
        self.metrics.request(handle.name, handle.version, 200)
        return outputs

    async def _infer(self, handle: ModelHandle, inputs: Mapping[str, np.ndarray], parameters: Mapping[str, Any] | None,
                     timeout_ms: float | None, admission: bool = True) -> dict[str, np.ndarray]:
        batch = self._check(handle, inputs)
        executor = handle.executor
        if executor is None:
            raise ModelNotReady(f"model '{handle.name}' version '{handle.version}' is not ready (unloaded)")
        limit_ms = self.timeout_ms(handle, timeout_ms)
        admit = getattr(executor, "admit", None) if admission else None
        if admit is not None:
            admit(limit_ms / 1000.0)
        handle.acquire()
        try:
            # asyncio's own timeout: about half the cost of anyio.move_on_after per request (benchmarks/RESULTS.md).
            deadline = asyncio.timeout(limit_ms / 1000.0)
            try:
                async with deadline:
                    outputs = await executor(inputs, parameters or {})
            except TimeoutError:
                if not deadline.expired():
                    raise  # the model's own TimeoutError: a ModelError below
                raise DeadlineExceeded(
                    f"model '{handle.name}' version '{handle.version}' did not answer within {limit_ms:g} ms "
                    "(the request's timeout: manifest timeout_ms and setting request_timeout_ms set it; the "
                    "caller's X-Request-Timeout-Ms header or gRPC deadline lowers it)") from None
            return self._check_outputs(handle, outputs, batch)
        except MlgateError:
            raise  # the engine's own errors (queue full, deadline) keep their status
        except Exception as exc:
            log.exception("model raised during inference", model=handle.name, version=handle.version)
            raise ModelError(
                f"model '{handle.name}' version '{handle.version}' failed while computing the answer; "
                "the server log has the details under this request's X-Request-ID"
            ) from exc
        finally:
            handle.release()

    def _check(self, handle: ModelHandle, inputs: Mapping[str, np.ndarray]) -> int:
        batch_sizes: dict[str, int] = {}
        for spec in handle.inputs:
            field = f"inputs[{spec.name}]"
            array = inputs.get(spec.name)
            if array is None:
                expected = ", ".join(repr(s.name) for s in handle.inputs)
                raise InvalidInput(
                    f"missing input '{spec.name}': model '{handle.name}' takes {expected}", field="inputs"
                )
            shape = array.shape
            if len(shape) != len(spec.shape) or any(
                want != -1 and want != got for want, got in zip(spec.shape, shape, strict=False)
            ):
                raise InvalidInput(
                    f"input '{spec.name}' has shape {_dims(shape)}; model '{handle.name}' expects "
                    f"{_dims(spec.shape)} (-1: any size)", field=f"{field}.shape"
                )
            batch_sizes[spec.name] = shape[0]
            if spec.datatype in FLOAT_DATATYPES and not spec.allow_nonfinite and array.size:
                finite = np.isfinite(array)
                if not finite.all():
                    where = int(np.flatnonzero(~finite.reshape(-1))[0])
                    raise InvalidInput(
                        f"input '{spec.name}' holds NaN or Infinity (first at flat index {where}); "
                        f"model '{handle.name}' takes finite numbers only", field=f"{field}.data"
                    )
        sizes = set(batch_sizes.values())
        if len(sizes) > 1:
            raise InvalidInput(
                f"inputs have different batch sizes (first dimension): {batch_sizes}", field="inputs"
            )
        batch = sizes.pop() if sizes else 0
        if batch == 0:
            raise InvalidInput("the batch is empty: the first dimension of each input must be >= 1",
                               field="inputs")
        return batch

    def _check_outputs(self, handle: ModelHandle, outputs: Mapping[str, Any], batch: int) -> dict[str, np.ndarray]:
        checked: dict[str, np.ndarray] = {}
        for name, value in outputs.items():
            array = np.asarray(value)
            if array.ndim == 0 or array.shape[0] != batch:
                log.error("model answered with the wrong batch size", model=handle.name,
                          version=handle.version, output=name, shape=list(array.shape), batch=batch)
                raise ModelError(
                    f"model '{handle.name}' version '{handle.version}' answered with a malformed output; "
                    "the server log has the details under this request's X-Request-ID"
                )
            checked[name] = array
        return checked
