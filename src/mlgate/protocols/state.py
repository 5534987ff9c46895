"""State, typed: the server's one state object, and each HTTP request's.

``ServerState`` is what the lifespan (``mlgate.lifespan``) builds once: settings, data plane, database,
security, the catalog's control plane and the jobs. It hangs on the app as ``app.state.mlgate``; routes read it with
``server_state(request)``.

``RequestState`` is what the layers of one request tell each other: the edge writes the request id and the
client address, the security entry point (``mlgate.protocols.security.admit``) the caller, what it was
admitted for and the tightest quota charged; the edge reads the quota back for the ``RateLimit-*`` headers,
and the inference routes read the caller for the prediction log. It lives under one key of the ASGI scope's
``state`` (``STATE_KEY``); read and write it through ``request_state(scope)``, never through string keys.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlgate.auth.caller import Action, Caller
from mlgate.auth.store import UserInfo
from mlgate.ratelimit.limiter import Quota

if TYPE_CHECKING:
    from mlgate.access import RateLimitTier
    from mlgate.auth.service import SecurityService
    from mlgate.catalog.control import ControlPlane
    from mlgate.db.engine import Database
    from mlgate.inference.dataplane import DataPlane
    from mlgate.jobs.service import JobService
    from mlgate.settings import Settings

__all__ = ["SERVER_KEY", "STATE_KEY", "RequestState", "ServerState", "request_state", "server_state"]

STATE_KEY = "mlgate"
"""The one key of ``scope["state"]`` (and of ``app.state``) that mlgate uses."""
SERVER_KEY = "mlgate.server"
"""The key of the ASGI scope under which ``mlgate.app`` hands each HTTP request the ``ServerState`` (the app's
``state`` is reached through a property and Starlette's ``State.__getattr__``, several times per request)."""


@dataclass(slots=True)
class RequestState:
    """What one HTTP request's layers know of it. Fields stay at their defaults until a layer sets them."""

    request_id: str = ""
    """The request id (``X-Request-ID``), set by the edge."""
    client_address: str = ""
    """The client address, trusted proxies applied, set by the edge ("" when the edge did not run)."""
    caller: Caller | None = None
    """The authenticated caller (anonymous included), set once by the security entry point."""
    started: float | None = None
    """``time.perf_counter()`` when the caller was first authenticated: the latency of a refused request."""
    admitted: bool = False
    """Whether the security entry point admitted the request (and charged it one request)."""
    action: Action | None = None
    """The right the request was admitted for (None: a server-wide route, any caller)."""
    model: str | None = None
    """The model the request was admitted on (None: server-wide); rows are charged against its limits."""
    served: bool = False
    """Whether the request reached the data plane (which then records its answer in the prediction log)."""
    quota: Quota | None = None
    """The tightest quota charged so far: the ``RateLimit-*`` response headers."""
    tiers: tuple[Caller, str | None, tuple[str, RateLimitTier], tuple[str, RateLimitTier] | None] | None = None
    """``(caller, model, (tier name, tier), key tier)`` of the last charge (``mlgate.protocols.security``): the
    request's rows are charged on the tiers its admission found, without looking them up again."""
    admin_user: UserInfo | None = None
    """The user of the admin session (``mlgate.web.admin``), once the admin authenticated it."""

    @property
    def identity(self) -> str | None:
        """The caller as the prediction log and canary routing name it: ``key:...``/``user:...``, or None when
        anonymous or not authenticated."""
        caller = self.caller
        return caller.actor if caller is not None and not caller.anonymous else None


def request_state(scope: MutableMapping[str, Any] | Any) -> RequestState:
    """The ``RequestState`` of an ASGI ``scope`` (or of a Starlette ``Request``), made on first use."""
    if type(scope) is not dict and not isinstance(scope, MutableMapping):  # a dict first: no ABC check
        scope = scope.scope
    states: dict[str, Any] | None = scope.get("state")
    if states is None:
        states = scope["state"] = {}
    state = states.get(STATE_KEY)
    if state is None:
        state = states[STATE_KEY] = RequestState()
    return state


@dataclass(slots=True)
class ServerState:
    """The server's one state object, built by the lifespan and closed by it (``mlgate.lifespan``)."""

    settings: Settings
    dataplane: DataPlane
    database: Database
    security: SecurityService
    control: ControlPlane
    jobs: JobService
    """Inference jobs: submit, read, cancel (``mlgate.jobs``)."""


def server_state(request: Any) -> ServerState:
    """The ``ServerState`` of the app serving ``request`` (a Starlette ``Request`` or anything with ``.app``):
    the one ``mlgate.app`` puts in the request's scope (``SERVER_KEY``), else the app's ``state``.

    Raises RuntimeError when the app's lifespan has not run (routes are only served after it)."""
    scope = getattr(request, "scope", None)
    if scope is not None and (state := scope.get(SERVER_KEY)) is not None:
        return state  # type: ignore[no-any-return]
    state = getattr(request.app.state, STATE_KEY, None)
    if not isinstance(state, ServerState):
        raise RuntimeError("the app's lifespan has not run: no server state")
    return state
