"""The canary routing key of a request: ``X-Routing-Key``, else the caller.

The caller itself is in the request's ``RequestState`` (``mlgate.protocols.state``): ``identity`` is how the
prediction log and canary routing name it.
"""

from __future__ import annotations

from starlette.requests import Request

from mlgate.protocols.headers import header

__all__ = ["ROUTING_KEY_HEADER", "routing_key"]

ROUTING_KEY_HEADER = "x-routing-key"
_ROUTING_KEY = ROUTING_KEY_HEADER.encode()


def routing_key(request: Request, caller: str | None) -> str | None:
    """The key that makes canary routing sticky: ``X-Routing-Key`` (at most 256 characters), else ``caller``."""
    key = header(request, _ROUTING_KEY)
    return key[:256] if key else caller
