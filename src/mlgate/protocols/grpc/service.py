"""``inference.GRPCInferenceService``: the KServe V2 protocol over gRPC, on the one data plane and security.

Every call is admitted by the security entry point (``mlgate.protocols.security.admit``) on a
``Credentials`` made from its metadata (``authorization: Bearer ...``) and peer, with the rights REST asks:
health is open; server metadata needs a caller; model metadata, readiness and inference the ``predict``
right on the model (inference is charged its rows too); the repository index a signed-in caller (it lists
the models the caller may deploy or predict with); load and unload the ``deploy`` right, audited. Inference
runs through ``DataPlane.serving`` (so the prediction log records it) under the call's gRPC deadline;
refusals after admission are recorded as over REST (``mlgate.protocols.routes.record_refusal``). Errors
become statuses in ``mlgate.protocols.grpc.errors``.

``x-request-id`` metadata (1-128 characters of ``A-Za-z0-9._:-``, else a random one) comes back in the
trailing metadata of the answer (with the status, so it costs no message of its own); ``x-routing-key``
makes canary routing sticky as the REST header does. The client address is the TCP peer, or, when the peer
is one of ``trusted_proxies``, the client named in ``x-forwarded-for`` metadata (the HTTP edge's rule,
``mlgate.auth.client``): anonymous rate limits and the logs use it.

The call's deadline is the request's deadline, less ``DEADLINE_MARGIN_S`` so that mlgate's own
DEADLINE_EXCEEDED (its message, the request id, the prediction log's 504) reaches the caller before the
caller's timer fires; a request still queued at its deadline leaves the queue without running. Should grpc
cancel the call first, the data plane still records a 504.
ModelStreamInfer runs up to ``grpc_stream_concurrency`` requests of a stream at once and answers each in the
order sent, an error as ``error_message`` (the stream goes on).
With ``access_log``, every call writes one line on ``mlgate.access`` (``mlgate.logs.log_access``): method
``GRPC``, path ``/inference.GRPCInferenceService/<Method>``, ``status`` the gRPC code's number (0 OK) and
``grpc_status`` its name, the duration in ms, the request id, ``caller``, ``client`` and ``peer``.
While tracing is on (``mlgate.tracing``), every call is a server span ``gRPC /service/Method``, a child of the
caller's ``traceparent`` metadata (``_call_span``; docs/operations.md lists its attributes).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from mlgate import tracing
from mlgate.auth.caller import Action
from mlgate.errors import DeadlineExceeded, MlgateError
from mlgate.logs import REQUEST_ID, log_access
from mlgate.protocols.grpc import grpc_service_pb2 as pb
from mlgate.protocols.grpc.codec import decode_request, encode_response
from mlgate.protocols.grpc.errors import Status, status_of, unexpected_status
from mlgate.protocols.routes import record_refusal
from mlgate.protocols.security import Credentials, admit, audit_actor, charge, may_use, rows_of
from mlgate.protocols.state import RequestState, ServerState

__all__ = ["DEADLINE_MARGIN_S", "SERVICE_NAME", "InferenceService", "credentials", "log_call"]

SERVICE_NAME = "inference.GRPCInferenceService"

DEADLINE_MARGIN_S = 0.02
"""Seconds of a call's deadline kept for answering: the request's timeout is the rest."""

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")  # the edge's rule (mlgate.edge.request_id)
_random = random.Random(random.SystemRandom().getrandbits(128))  # ids: unique, not secret; no system call each
_PEER = re.compile(r"^(?:ipv4:(?P<v4>[^:]+)|ipv6:\[(?P<v6>[^\]]+)\]|unix:.*)")

Context = Any
"""``grpc.aio.ServicerContext`` (grpcio ships no type information)."""


@functools.lru_cache(maxsize=4096)  # one peer string per connection, many calls each
def _peer_address(peer: str) -> str:
    match = _PEER.match(peer)
    if match is None:
        return "unknown"
    return match.group("v4") or match.group("v6") or "unix"


def credentials(context: Context, server: ServerState) -> Credentials:
    """The ``Credentials`` of a call: its ``authorization`` metadata, client address and a fresh RequestState
    carrying its request id (``x-request-id`` metadata when valid, else 128 random bits in hex, from a
    generator seeded once per process by the system: ids must not repeat, they need not be secret) and its
    client address: the peer's, or, from a peer in ``trusted_proxies``, what ``x-forwarded-for`` says."""
    authorization: list[str] = []
    forwarded: list[str] = []
    request_id = ""
    routing_key = None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            authorization.append(value)
        elif key == "x-request-id" and not request_id and isinstance(value, str) and _REQUEST_ID.match(value):
            request_id = value
        elif key == "x-forwarded-for" and isinstance(value, str):
            forwarded.append(value)
        elif key == "x-routing-key" and routing_key is None and isinstance(value, str):
            routing_key = value[:256]
    peer = _peer_address(context.peer() or "")
    resolver = server.security.addresses
    client = resolver.resolve(peer, forwarded) if resolver.trusted else peer
    state = RequestState(request_id=request_id or f"{_random.getrandbits(128):032x}", client_address=client)
    return Credentials(authorization, client, server, state, peer, routing_key)


async def _end(context: Context, status: Status, request_id: str) -> None:
    context.set_trailing_metadata((*status.trailers, ("x-request-id", request_id)))
    await context.abort(status.code, status.message)


def _past_deadline(context: Context) -> bool:
    remaining = context.time_remaining()
    return remaining is not None and remaining <= 0


_SERVER_FAULTS = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
                            grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS})
"""Codes that make a server span's status an error (OpenTelemetry's semantic conventions for gRPC); the
caller's mistakes (INVALID_ARGUMENT, NOT_FOUND, UNAUTHENTICATED...) leave it unset."""


def _call_span(path: str, context: Context, request_id: str) -> contextlib.AbstractContextManager[Any]:
    """The call's server span while tracing is on (``mlgate.tracing``; else a context yielding None): named
    ``gRPC /service/Method``, a child of the caller's span when its metadata carries a ``traceparent``, with
    ``rpc.system``, ``rpc.service``, ``rpc.method`` and ``mlgate.request_id``."""
    if not tracing.active():
        return contextlib.nullcontext()
    traceparent = next((value for key, value in context.invocation_metadata() or ()
                        if key == "traceparent" and isinstance(value, str)), None)
    service, _, method = path.lstrip("/").partition("/")
    return tracing.span(f"gRPC {path}", kind="server", traceparent=traceparent, attributes={
        "rpc.system": "grpc", "rpc.service": service, "rpc.method": method, "mlgate.request_id": request_id})


def _end_span(span: Any, code: grpc.StatusCode) -> None:
    """Put the call's status code on its span (``rpc.grpc.status_code``); a server fault marks it an error."""
    if span is None:
        return
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_FAULTS:
        from opentelemetry.trace import StatusCode

        span.set_status(StatusCode.ERROR, code.name)


@dataclass
class _Outcome:
    """How a call ended: its status code, and the status to end it with when it failed."""

    code: grpc.StatusCode = grpc.StatusCode.OK
    failure: Status | None = None


async def _answer(context: Context, outcome: _Outcome, answer: Any, request_id: str) -> Any:
    """End the call: with its failure's status (raises, as ``context.abort`` does), else ``answer`` with the
    request id in the trailing metadata."""
    if outcome.failure is not None:
        await _end(context, outcome.failure, request_id)
    context.set_trailing_metadata((("x-request-id", request_id),))
    return answer


def log_call(path: str, code: grpc.StatusCode, started: float, creds: Credentials) -> None:
    """The access-log line of a gRPC call to ``path`` (``/service/Method``) that began at ``started``
    (``time.perf_counter()``) and ended with ``code`` (see the module docstring for its fields)."""
    state = creds.state
    log_access("GRPC", path, code.value[0], round((time.perf_counter() - started) * 1000, 3), state.request_id,
               grpc_status=code.name, caller=state.identity, client=state.client_address,
               peer=creds.peer)


class InferenceService:
    """The methods of ``inference.GRPCInferenceService`` on ``server``'s data plane, security and control
    plane. ``handler()`` is what a ``grpc.aio`` server serves."""

    def __init__(self, server: ServerState) -> None:
        self.server = server

    # -- health and metadata ------------------------------------------------------------------------

    async def server_live(self, request: pb.ServerLiveRequest, creds: Credentials) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.server.dataplane.live())

    async def server_ready(self, request: pb.ServerReadyRequest, creds: Credentials) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.server.dataplane.ready())

    async def server_metadata(self, request: pb.ServerMetadataRequest,
                              creds: Credentials) -> pb.ServerMetadataResponse:
        await admit(creds, None)
        meta = self.server.dataplane.server_metadata()
        return pb.ServerMetadataResponse(name=meta.name, version=meta.version, extensions=meta.extensions)

    async def model_ready(self, request: pb.ModelReadyRequest, creds: Credentials) -> pb.ModelReadyResponse:
        await admit(creds, Action.PREDICT, request.name, request.version or None)
        return pb.ModelReadyResponse(
            ready=self.server.dataplane.model_status(request.name, request.version or None).ready)

    async def model_metadata(self, request: pb.ModelMetadataRequest,
                             creds: Credentials) -> pb.ModelMetadataResponse:
        await admit(creds, Action.PREDICT, request.name, request.version or None)
        meta = self.server.dataplane.model_metadata(request.name, request.version or None)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta.name, versions=meta.versions, platform=meta.platform,
            inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
            outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs])

    # -- inference ----------------------------------------------------------------------------------

    async def model_infer(self, request: pb.ModelInferRequest, creds: Credentials,
                          context: Context = None) -> pb.ModelInferResponse:
        """Admit on the model (``predict``), decode, charge the rows, run, encode (the REST path's steps).

        The call's deadline (less ``DEADLINE_MARGIN_S``) lowers the request's timeout; DeadlineExceeded
        (504) when it passes, also when grpc cancels the call at its deadline first."""
        name, version = request.model_name, request.model_version or None
        await admit(creds, Action.PREDICT, name, version)
        plane = self.server.dataplane
        state = creds.state
        state.served = True
        identity = state.identity
        remaining = context.time_remaining() if context is not None else None
        timeout_ms = (remaining - DEADLINE_MARGIN_S) * 1000.0 if remaining is not None else None
        async with plane.serving(name, version, caller=identity, key=creds.routing_key or identity) as call:
            handle = call.handle
            body, inputs = decode_request(request, handle.inputs)
            await charge(creds, rows_of(inputs))
            try:
                outputs = await call.infer(inputs, body.parameters, timeout_ms=timeout_ms)
            except asyncio.CancelledError:
                if context is None or not _past_deadline(context):
                    raise  # the caller went away, or the server stops
                # grpc cancelled the call at its deadline before the data plane's timer fired
                raise DeadlineExceeded(f"model '{handle.name}' version '{handle.version}' did not answer within "
                                       "the call's deadline") from None
        return encode_response(body, outputs, model_name=handle.name, model_version=handle.version,
                               specs=handle.outputs, labels=handle.labels)

    async def model_stream_infer(self, requests: AsyncIterator[pb.ModelInferRequest], context: Context,
                                 stream: Credentials | None = None) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """One answer per request, in the order sent; a request's error is its answer's ``error_message``.
        Each request is admitted on its own; ``stream`` (the stream's credentials) learns the first caller.

        Up to ``grpc_stream_concurrency`` requests run at once: the next request is read only while fewer
        are unanswered, so a client that sends faster than the model answers is held back by HTTP/2 flow
        control rather than queued here."""
        limit = self.server.settings.grpc_stream_concurrency
        slots = asyncio.Semaphore(limit)
        pending: asyncio.Queue[asyncio.Task[pb.ModelStreamInferResponse] | None] = asyncio.Queue()

        async def one(request: pb.ModelInferRequest) -> pb.ModelStreamInferResponse:
            try:
                creds = credentials(context, self.server)
                REQUEST_ID.set(creds.state.request_id)
                try:
                    response = await self.model_infer(request, creds, context)
                except MlgateError as exc:
                    record_refusal(creds.state, self.server, exc)
                    message = status_of(exc, creds.state.request_id).message
                    return pb.ModelStreamInferResponse(error_message=message, infer_response=pb.ModelInferResponse(
                        model_name=request.model_name, model_version=request.model_version, id=request.id))
                return pb.ModelStreamInferResponse(infer_response=response)
            finally:
                slots.release()
                if stream is not None and stream.state.caller is None:
                    stream.state.caller = creds.state.caller

        async def read() -> None:
            loop = asyncio.get_running_loop()
            try:
                async for request in requests:
                    await slots.acquire()
                    pending.put_nowait(loop.create_task(one(request)))
            finally:
                pending.put_nowait(None)

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while (task := await pending.get()) is not None:
                yield await task
            await reader  # the request stream's own error, if any
        finally:
            reader.cancel()
            while not pending.empty():
                if (task := pending.get_nowait()) is not None:
                    task.cancel()

    # -- repository extension -----------------------------------------------------------------------

    async def repository_index(self, request: pb.RepositoryIndexRequest,
                               creds: Credentials) -> pb.RepositoryIndexResponse:
        await admit(creds, None, signed_in=True)
        entries = await self.server.control.index()
        visible: dict[str, bool] = {}
        response = pb.RepositoryIndexResponse()
        for entry in entries:
            name = str(entry["name"])
            if name not in visible:
                visible[name] = (await may_use(creds, name, Action.DEPLOY)
                                 or await may_use(creds, name, Action.PREDICT))
            if visible[name] and (not request.ready or entry["state"] == "READY"):
                response.models.add(name=name, version=entry["version"] or "", state=entry["state"] or "",
                                    reason=entry["reason"] or "")
        return response

    async def repository_model_load(self, request: pb.RepositoryModelLoadRequest,
                                    creds: Credentials) -> pb.RepositoryModelLoadResponse:
        await admit(creds, Action.DEPLOY, request.model_name)
        await self.server.control.load(request.model_name, by=audit_actor(creds))
        return pb.RepositoryModelLoadResponse()

    async def repository_model_unload(self, request: pb.RepositoryModelUnloadRequest,
                                      creds: Credentials) -> pb.RepositoryModelUnloadResponse:
        await admit(creds, Action.DEPLOY, request.model_name)
        await self.server.control.unload(request.model_name, by=audit_actor(creds))
        return pb.RepositoryModelUnloadResponse()

    # -- wiring -------------------------------------------------------------------------------------

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """The service's methods by name, for ``grpc.aio.Server.add_registered_method_handlers`` (grpc then
        finds a call's method without asking Python)."""
        unary: dict[str, tuple[Callable[..., Awaitable[Any]], Any, Any]] = {
            "ServerLive": (self.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
            "ServerReady": (self.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse),
            "ServerMetadata": (self.server_metadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse),
            "ModelReady": (self.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
            "ModelMetadata": (self.model_metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse),
            "ModelInfer": (self.model_infer, pb.ModelInferRequest, pb.ModelInferResponse),
            "RepositoryIndex": (self.repository_index, pb.RepositoryIndexRequest, pb.RepositoryIndexResponse),
            "RepositoryModelLoad": (self.repository_model_load, pb.RepositoryModelLoadRequest,
                                    pb.RepositoryModelLoadResponse),
            "RepositoryModelUnload": (self.repository_model_unload, pb.RepositoryModelUnloadRequest,
                                      pb.RepositoryModelUnloadResponse),
        }
        handlers: dict[str, grpc.RpcMethodHandler] = {
            name: grpc.unary_unary_rpc_method_handler(
                self._unary(method, f"/{SERVICE_NAME}/{name}"), request_deserializer=message.FromString,
                response_serializer=response.SerializeToString)
            for name, (method, message, response) in unary.items()}
        handlers["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(
            self._stream, request_deserializer=pb.ModelInferRequest.FromString,
            response_serializer=pb.ModelStreamInferResponse.SerializeToString)
        return handlers

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's methods as one generic handler for ``grpc.aio.Server.add_generic_rpc_handlers``."""
        return grpc.method_handlers_generic_handler(SERVICE_NAME, self.method_handlers())

    def _unary(self, method: Callable[..., Awaitable[Any]], path: str) -> Callable[[Any, Context], Awaitable[Any]]:
        infer = method == self.model_infer

        async def call(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            creds = credentials(context, self.server)
            # Each call runs in a task of its own: the id reaches the prediction log and every log line of it.
            REQUEST_ID.set(creds.state.request_id)
            answer = None
            with self._served(path, context, creds, started) as outcome:
                answer = await (self.model_infer(request, creds, context) if infer else method(request, creds))
            return await _answer(context, outcome, answer, creds.state.request_id)

        return call

    async def _stream(self, requests: AsyncIterator[pb.ModelInferRequest],
                      context: Context) -> AsyncIterator[pb.ModelStreamInferResponse]:
        started = time.perf_counter()
        creds = credentials(context, self.server)
        with self._served(f"/{SERVICE_NAME}/ModelStreamInfer", context, creds, started) as outcome:
            async for response in self.model_stream_infer(requests, context, creds):
                yield response
        await _answer(context, outcome, None, creds.state.request_id)

    @contextlib.contextmanager
    def _served(self, path: str, context: Context, creds: Credentials, started: float) -> Iterator[_Outcome]:
        """Around the body of a call to ``path``: its span (while tracing), its status code, its access line.
        An error leaving the body is kept in the outcome (``_answer`` then ends the call with its status): a
        MlgateError as its own status (a refusal recorded as over REST), anything else a generic INTERNAL."""
        request_id = creds.state.request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        outcome = _Outcome()
        with _call_span(path, context, request_id) as span:
            try:
                yield outcome
            except MlgateError as exc:
                record_refusal(creds.state, self.server, exc)
                outcome.failure = status_of(exc, request_id)
            except asyncio.CancelledError:
                outcome.code = (grpc.StatusCode.DEADLINE_EXCEEDED if _past_deadline(context)
                                else grpc.StatusCode.CANCELLED)
                raise
            except Exception as exc:  # noqa: BLE001 - a bug: the caller gets a generic INTERNAL, the log the rest
                outcome.failure = unexpected_status(exc, request_id)
            finally:
                if outcome.failure is not None:
                    outcome.code = outcome.failure.code
                _end_span(span, outcome.code)
                if self.server.settings.access_log:
                    log_call(path, outcome.code, started, creds)
