"""The client address of a request, resolved once by the edge and kept in the request's
``RequestState``.

The address is the TCP peer, or, when the peer is a configured trusted proxy, the client named in
``X-Forwarded-For`` (see ``mlgate.auth.client``). Rate limits of anonymous callers and the audit log use it.
"""

from __future__ import annotations

from starlette.types import Scope

from mlgate.auth.client import ClientAddressResolver

__all__ = ["resolve_client_address"]


def resolve_client_address(scope: Scope, resolver: ClientAddressResolver) -> str:
    """The client of the HTTP request ``scope``: its peer, or what trusted proxies say (``resolver``)."""
    client = scope.get("client")
    peer = client[0] if client else None
    if not resolver.trusted:
        return peer or "unknown"
    forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
    return resolver.resolve(peer, forwarded)
