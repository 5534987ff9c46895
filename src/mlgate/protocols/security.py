"""Security for routes, in DRF's fixed order: authenticate -> authorize -> rate limit.

A route that serves a model names its action and where the model name is::

    @router.post("/models/{model_name}/infer", dependencies=[require(Action.PREDICT)])

A route whose model is in the body (OpenAI's ``model``) lets ``require_caller()`` turn away bad credentials
and anonymous callers (unless some model is open to them) before the body is read, then authorizes once it
knows the model, and charges the cost before running it::

    @router.post("/embeddings", dependencies=[require_caller(count=False)])
    async def embeddings(request: Request, ...):
        body = parse(...)
        await authorize(request, Action.PREDICT, body.model)   # 401/403, then the request rate limit
        await charge(request, token_count)                       # rows/tokens against the caller's tier

``charge`` counts the cost of a request in rows (V2/V1 batch size) or tokens after the body is decoded.
``authenticate(request)`` gives the ``Caller`` (anonymous when no credentials were sent) for routes that
decide for themselves, and ``audit_actor(request)`` the ``Actor`` to record changes with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mlgate.auth.caller import Action, Caller
from mlgate.auth.service import Security as SecurityService
from mlgate.auth.store import Actor
from mlgate.errors import NotFound, Unauthenticated
from mlgate.model.manifest import is_valid_name
from mlgate.protocols.headers import header_values
from mlgate.ratelimit.limiter import LimitExceeded, Quota, Unit

__all__ = ["admit_caller", "audit_actor", "authenticate", "authorize", "authorize_version", "charge", "may_use",
           "require", "require_caller", "rows_of", "security"]

_STATE_QUOTA = "rate_limit"
STATE_STARTED = "security_started"
"""``time.perf_counter()`` when the request's caller was first authenticated (the prediction log's latency of a
request refused before it was served)."""
_bearer = HTTPBearer(auto_error=False, description="An API key (mlg_...) or an access token from "
                     "POST /api/v1/auth/token.")

Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
"""Declares the bearer scheme in OpenAPI (the docs' Authorize button); the header is parsed by the authenticator."""

ModelRef = str | Callable[[Request], str | None] | None
"""Where a route's model name is: a path parameter's name, a function of the request, or None (no model)."""


def security(request: Request) -> SecurityService:
    service: SecurityService = request.app.state.security
    return service


def _state(request: Request) -> dict[str, Any]:
    """The request's state (``request.state``'s dict, read without Starlette's ``State`` wrapper: a missing
    attribute there costs a raised and caught KeyError)."""
    state: dict[str, Any] = request.scope.setdefault("state", {})
    return state


def client_address(request: Request) -> str:
    """The client address (trusted proxies applied by the edge, ``mlgate.edge.middleware``)."""
    address = _state(request).get("client_address")
    if isinstance(address, str):
        return address
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request) -> Caller:
    """The request's caller (once per request). 401 InvalidCredentials for bad credentials."""
    state = _state(request)
    caller = state.get("caller")
    if isinstance(caller, Caller):
        return caller
    state.setdefault(STATE_STARTED, time.perf_counter())
    caller = await security(request).authenticator.authenticate(
        header_values(request, b"authorization"), client_address(request))
    state["caller"] = caller
    return caller


async def authorize(request: Request, action: Action, model: str | None = None) -> Caller:
    """Authenticate, check ``action`` on ``model`` (None: server-wide), and charge one request to the
    caller's rate limits on that model. Raises 401, 403, 404 (invalid model name), 429 or 503."""
    caller = await authenticate(request)
    service = security(request)
    service.policy.check(caller, action, model)
    state = _state(request)
    state["rate_model"] = model
    state["authorized_action"] = action
    await _consume(request, caller, model, "requests", 1)
    return caller


async def charge(request: Request, cost: int) -> None:
    """Charge ``cost`` rows (or tokens) to the caller authorized on this request. 429 when over."""
    state = _state(request)
    caller = state.get("caller")
    if not isinstance(caller, Caller) or "rate_model" not in state:
        raise RuntimeError("charge() before authorize(): authorize the request first")
    await _consume(request, caller, state["rate_model"], "rows", cost)


async def _consume(request: Request, caller: Caller, model: str | None, unit: Unit, cost: int) -> None:
    service = security(request)
    if not service.settings.rate_limit_enabled:
        return
    tier_name, tier = service.policy.tier(caller, model)
    state = _state(request)
    key_tier = service.policy.key_tier(caller)
    try:
        quota = None if key_tier is None else await service.limits.consume(
            key_tier[0], key_tier[1], f"key:{caller.key_id}", model or "-", unit, cost)
        user_quota = await service.limits.consume(tier_name, tier, caller.rate_identity, model or "-", unit, cost)
        quota = user_quota.tighter(quota) if user_quota is not None else quota
    except LimitExceeded as exc:
        state[_STATE_QUOTA] = exc.quota
        raise
    if quota is not None:
        previous = state.get(_STATE_QUOTA)
        state[_STATE_QUOTA] = quota.tighter(previous if isinstance(previous, Quota) else None)


def rows_of(inputs: Mapping[str, Any]) -> int:
    """The rows of a decoded request: the largest first dimension of its input arrays (at least 1)."""
    return max((int(a.shape[0]) for a in inputs.values() if getattr(a, "ndim", 0)), default=1)


async def may_use(request: Request, model: str, action: Action = Action.PREDICT) -> bool:
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
    """A FastAPI dependency: ``authorize(request, action, <model>)``; it gives the Caller.

    ``model`` is the path parameter holding the model name (default ``model_name``), a function of the
    request, or None for a server-wide right; ``version`` likewise for the model version (when the path has
    one). A version that is not a valid name is a 404 once the caller is authorized. Use as
    ``dependencies=[require(...)]`` or ``caller: Caller = require(...)``.
    """

    async def dependency(request: Request, _: Bearer) -> Caller:
        return await authorize_version(request, action, _model_name(request, model), _model_name(request, version))

    return Depends(dependency)


async def authorize_version(request: Request, action: Action, model: str | None, version: str | None) -> Caller:
    """``authorize(request, action, model)``, then a 404 for a ``version`` that is not a valid name: what
    ``require`` runs, for routes served without FastAPI's dependencies (``v1.ROUTES``, ``v2.ROUTES``)."""
    caller = await authorize(request, action, model)
    if version is not None and not is_valid_name(version):
        raise NotFound(f"'{version}' is not a valid model version (letters, digits, '.', '_', '-')",
                       field="model_version")
    return caller


def require_caller(*, signed_in: bool = False, count: bool = True) -> Any:
    """A FastAPI dependency giving the Caller of a route about the server rather than a model (``GET /v2``):
    any signed-in caller, or an anonymous one when some served model is open to anonymous callers
    (``signed_in=True``: never anonymous). With ``count``, charges one request to the caller's server-wide
    limits; a route that goes on to ``authorize`` on a model passes ``count=False``."""

    async def dependency(request: Request, _: Bearer) -> Caller:
        return await admit_caller(request, signed_in=signed_in, count=count)

    return Depends(dependency)


async def admit_caller(request: Request, *, signed_in: bool = False, count: bool = True) -> Caller:
    """What ``require_caller`` runs, for routes served without FastAPI's dependencies (``openai.ROUTES``)."""
    caller = await authenticate(request)
    if signed_in and caller.anonymous:
        raise Unauthenticated()
    security(request).policy.check_any(caller)
    if count:
        _state(request)["rate_model"] = None
        await _consume(request, caller, None, "requests", 1)
    return caller


def audit_actor(request: Request) -> Actor:
    """The ``Actor`` of this request for ``record_audit`` / ``AuthStore``: caller, client address, request id."""
    caller = _state(request).get("caller")
    name = caller.actor if isinstance(caller, Caller) else "anonymous"
    state = request.scope.get("state", {})
    request_id = state.get("request_id")
    return Actor(name, client=client_address(request), request_id=request_id if isinstance(request_id, str) else None)
