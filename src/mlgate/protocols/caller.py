"""Who is calling: the seam where authentication plugs in (issue 5), and the canary routing key.

``current_caller`` is a FastAPI dependency returning the caller's identity (``Caller.actor`` of
``mlgate.auth``: the user or API key the security layer authenticated for this request), or None for an
anonymous caller. Routes authorize first (their ``dependencies`` run before parameter dependencies), so the
identity is known here. The prediction log records it, and canary routing uses it as the sticky key when
the request sends no ``X-Routing-Key``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mlgate.auth.caller import Caller as AuthCaller
from mlgate.protocols.headers import header

__all__ = ["Caller", "current_caller", "routing_key"]

ROUTING_KEY_HEADER = "x-routing-key"
_ROUTING_KEY = ROUTING_KEY_HEADER.encode()


async def current_caller(request: Request) -> str | None:
    """The authenticated caller's identity, or None (anonymous or not authenticated on this route)."""
    caller = request.scope.get("state", {}).get("caller")
    if isinstance(caller, AuthCaller) and not caller.anonymous:
        return caller.actor
    return None


Caller = Annotated[str | None, Depends(current_caller)]


def routing_key(request: Request, caller: str | None) -> str | None:
    """The key that makes canary routing sticky: ``X-Routing-Key`` (at most 256 characters), else the caller."""
    key = header(request, _ROUTING_KEY)
    return key[:256] if key else caller
