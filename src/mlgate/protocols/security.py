"""Security for routes, in DRF's fixed order: authenticate -> authorize -> rate limit, in ONE entry point.

``admit(request, action, model, version)`` is that entry point: every route that serves or shows a model, and
every management route, goes through it, directly or through the FastAPI dependencies built on it
(``require`` for a right on the model named in the path, ``require_caller`` for server-wide routes). A route
whose model is in the body (OpenAI's ``model``) admits the caller server-wide first (bad credentials are a 401
before the body is read) and then admits it on the model once the body names it::

    await admit(request, None, count=False)                # 401 for bad credentials, 403 if nothing is open
    body = parse(...)
    await admit(request, Action.PREDICT, body.model)       # 401/403, then the request rate limit
    await charge(request, token_count)                     # rows/tokens against the caller's tier

``charge`` counts the cost of an admitted request in rows (V2/V1 batch size) or tokens after the body is
decoded. ``authenticate(request)`` gives the ``Caller`` (anonymous when no credentials were sent) for routes
that decide for themselves, ``may_use`` answers without raising, and ``audit_actor(request)`` gives the
``Actor`` to record changes with. What each step learns goes into the request's ``RequestState``
(``mlgate.protocols.state``).

Every function here takes a Starlette ``Request`` or a ``Credentials``: what a transport other than HTTP
(gRPC, ``mlgate.protocols.grpc``) knows of a call (its ``authorization`` values, client address, state and
the server's state), so that one policy admits both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mlgate.auth.caller import Action, Caller
from mlgate.auth.service import SecurityService
from mlgate.auth.store import Actor
from mlgate.errors import NotFound, Unauthenticated
from mlgate.model.manifest import is_valid_name
from mlgate.protocols.headers import header_values
from mlgate.protocols.state import RequestState, ServerState, request_state, server_state
from mlgate.ratelimit.limiter import LimitExceeded, Unit

__all__ = ["Credentials", "admit", "audit_actor", "authenticate", "charge", "client_address", "may_use", "require",
           "require_caller", "rows_of", "security"]

_bearer = HTTPBearer(auto_error=False, description="An API key (mlg_...) or an access token from "
                     "POST /api/v1/auth/token.")

Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
"""Declares the bearer scheme in OpenAPI (the docs' Authorize button); the header is parsed by the authenticator."""

ModelRef = str | Callable[[Request], str | None] | None
"""Where a route's model name is: a path parameter's name, a function of the request, or None (no model)."""


@dataclass(slots=True)
class Credentials:
    """One call of a transport other than HTTP, as the security entry point sees it (gRPC: its metadata)."""

    authorization: Sequence[str]
    """The values of its ``authorization`` metadata (``Bearer mlg_...``), in order."""
    client_address: str
    """The client's address (``unknown`` when the transport does not say)."""
    server: ServerState
    """The server's state (security service, settings)."""
    state: RequestState = field(default_factory=RequestState)
    """What the layers of this call tell each other, as for an HTTP request."""
    peer: str = ""
    """The TCP peer's address (``client_address`` unless a trusted proxy forwarded the call)."""
    routing_key: str | None = None
    """The call's canary routing key (gRPC: ``x-routing-key`` metadata), None when it sent none."""


Source = Request | Credentials
"""What is admitted: an HTTP request, or the credentials of a call of another transport."""


def _state(request: Source) -> RequestState:
    return request.state if isinstance(request, Credentials) else request_state(request)


def _server(request: Source) -> ServerState:
    return request.server if isinstance(request, Credentials) else server_state(request)


def security(request: Source) -> SecurityService:
    """The app's security service (authenticator, policy, limits, identity store)."""
    return _server(request).security


def client_address(request: Source) -> str:
    """The client address (trusted proxies applied by the edge, ``mlgate.edge.middleware``)."""
    address = _state(request).client_address
    if address:
        return address
    if isinstance(request, Credentials):
        return request.client_address
    return request.client.host if request.client else "unknown"


async def authenticate(request: Source) -> Caller:
    """The request's caller (once per request). 401 InvalidCredentials for bad credentials."""
    return await _authenticate(request, _state(request), None)


async def _authenticate(request: Source, state: RequestState, service: SecurityService | None) -> Caller:
    if state.caller is not None:
        return state.caller
    if state.started is None:
        state.started = time.perf_counter()
    authorization = (request.authorization if isinstance(request, Credentials)
                     else header_values(request, b"authorization"))
    service = service or security(request)
    state.caller = await service.authenticator.authenticate(authorization, client_address(request))
    return state.caller


async def admit(request: Source, action: Action | None, model: str | None = None, version: str | None = None, *,
                signed_in: bool = False, count: bool = True) -> Caller:
    """THE security entry point: authenticate, authorize, and charge one request to the caller's rate limits.

    ``action`` on ``model`` (None: server-wide); ``action=None`` admits any caller that may use something
    (``signed_in=True``: never an anonymous one). With ``count``, one request is charged on ``model``'s limits
    (a route that goes on to admit on a model passes ``count=False`` first). A ``version`` that is not a valid
    name is a 404 once the caller is admitted. Raises 401 (Unauthenticated, InvalidCredentials), 403
    (Forbidden), 404 (invalid model name or version), 429 (LimitExceeded) or 503 (limit storage down).
    """
    state = _state(request)
    service = _server(request).security
    caller = await _authenticate(request, state, service)
    policy = service.policy
    if action is None:
        if signed_in and caller.anonymous:
            raise Unauthenticated()
        policy.check_any(caller)
    else:
        policy.check(caller, action, model)
    state.admitted, state.action, state.model = True, action, model
    if count:
        await _consume(service, state, caller, "requests", 1)
    if version is not None and not is_valid_name(version):
        raise NotFound(f"'{version}' is not a valid model version (letters, digits, '.', '_', '-')",
                       field="model_version")
    return caller


async def charge(request: Source, cost: int) -> None:
    """Charge ``cost`` rows (or tokens) to the caller admitted on this request. 429 when over."""
    state = _state(request)
    if state.caller is None or not state.admitted:
        raise RuntimeError("charge() before admit(): admit the request first")
    await _consume(security(request), state, state.caller, "rows", cost)


async def _consume(service: SecurityService, state: RequestState, caller: Caller, unit: Unit, cost: int) -> None:
    """Charge ``cost`` ``unit``s to ``caller`` on the model the request was admitted on (``state.model``)."""
    if not service.settings.rate_limit_enabled:
        return
    model = state.model
    tiers = state.tiers
    if tiers is None or tiers[0] is not caller or tiers[1] != model:  # a request's units share its tiers
        tiers = state.tiers = (caller, model, service.policy.tier(caller, model), service.policy.key_tier(caller))
    (tier_name, tier), key_tier = tiers[2], tiers[3]
    try:
        quota = None if key_tier is None else await service.limits.consume(
            key_tier[0], key_tier[1], f"key:{caller.key_id}", model or "-", unit, cost)
        user_quota = await service.limits.consume(tier_name, tier, caller.rate_identity, model or "-", unit, cost)
        quota = user_quota.tighter(quota) if user_quota is not None else quota
    except LimitExceeded as exc:
        state.quota = exc.quota
        raise
    if quota is not None:
        state.quota = quota.tighter(state.quota)


def rows_of(inputs: Mapping[str, Any]) -> int:
    """The rows of a decoded request: the largest first dimension of its input arrays (at least 1)."""
    return max((int(a.shape[0]) for a in inputs.values() if getattr(a, "ndim", 0)), default=1)


async def may_use(request: Source, model: str, action: Action = Action.PREDICT) -> bool:
    """Whether the request's caller may do ``action`` on ``model`` (no error raised, nothing charged): for
    pages and lists that show a caller only what it may use. Bad credentials still raise 401."""
    return security(request).policy.allows(await authenticate(request), action, model)


def _model_name(request: Request, ref: ModelRef) -> str | None:
    if ref is None:
        return None
    if isinstance(ref, str):
        value = request.path_params.get(ref)
        return value if isinstance(value, str) else None
    return ref(request)


def require(action: Action, model: ModelRef = "model_name", version: ModelRef = "model_version") -> Any:
    """A FastAPI dependency running ``admit(request, action, <model>, <version>)``; it gives the Caller.

    ``model`` is the path parameter holding the model name (default ``model_name``), a function of the
    request, or None for a server-wide right; ``version`` likewise for the model version (when the path has
    one). Use as ``dependencies=[require(...)]`` or ``caller: Caller = require(...)``.
    """

    async def dependency(request: Request, _: Bearer) -> Caller:
        return await admit(request, action, _model_name(request, model), _model_name(request, version))

    return Depends(dependency)


def require_caller(*, signed_in: bool = False, count: bool = True) -> Any:
    """A FastAPI dependency running ``admit(request, None, ...)`` for a route about the server rather than a
    model (``GET /v2``): any signed-in caller, or an anonymous one when some served model is open to anonymous
    callers (``signed_in=True``: never anonymous)."""

    async def dependency(request: Request, _: Bearer) -> Caller:
        return await admit(request, None, signed_in=signed_in, count=count)

    return Depends(dependency)


def audit_actor(request: Source) -> Actor:
    """The ``Actor`` of this request for ``record_audit`` / ``AuthStore``: caller, client address, request id."""
    state = _state(request)
    name = state.caller.actor if state.caller is not None else "anonymous"
    return Actor(name, client=client_address(request), request_id=state.request_id or None)
