"""The inference routes, served straight from the edge (``mlgate.edge.middleware``).

A prediction is the request this server answers most, and the one whose time is mostly overhead for small
models: FastAPI's and Starlette's layers between the edge and the endpoint (error and telemetry middleware,
the router walk, the exit stack, the request/response wrapper) cost about a third of its CPU (the measurement
is in benchmarks/RESULTS.md). ``FastPath`` matches ``POST`` requests against the app's ``INFERENCE_ROUTES``
(the very route objects its router holds: one per operation, ``mlgate.protocols.routes``) and calls the
endpoint itself; errors get the responses of the one error map (``mlgate.protocols.errors``). Everything else
goes through the app as usual.

Not used when CORS is configured: the CORS middleware sits inside the edge and must see every request.
FastAPI's native OpenTelemetry spans (made only when an OpenTelemetry provider is configured) are not made for
these routes; ``mlgate_requests_total`` and the access log count them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from mlgate.errors import MlgateError
from mlgate.protocols.errors import mlgate_error_response, unexpected_error_response

__all__ = ["FastPath"]

Endpoint = Callable[[Request], Awaitable[Response]]


class FastPath:
    """Serves ``routes`` (Starlette routes of ``POST`` endpoints whose path parameters are plain strings) from
    the edge: ``match`` a request, then ``serve`` it, answering every error with the one error map."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        self.prefixes = tuple({route.path.split("{", 1)[0] for route in self.routes})
        self._table = [(route.path.split("{", 1)[0], route.path_regex, route.endpoint, route)
                       for route in self.routes]

    def match(self, scope: Scope) -> tuple[Endpoint, Scope] | None:
        """The endpoint and its path parameters for a ``POST`` to one of the routes, else None."""
        path = scope["path"]
        if scope["method"] != "POST" or not path.startswith(self.prefixes):
            return None
        if scope.get("root_path"):  # mounted below a prefix: let Starlette strip it
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    return route.endpoint, {**child, "route": route}
            return None
        for prefix, regex, endpoint, route in self._table:  # Route.matches, less its generality (benchmarks/RESULTS.md)
            if path.startswith(prefix) and (found := regex.match(path)) is not None:
                return endpoint, {"endpoint": endpoint, "path_params": found.groupdict(), "route": route}
        return None

    async def serve(self, matched: tuple[Endpoint, Scope], scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a matched request: call its endpoint; a MlgateError or any other exception becomes the one
        error map's response, a client that went away gets none.
        """
        endpoint, child = matched
        scope.update(child)
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except ClientDisconnect:
            return  # nobody to answer
        except MlgateError as exc:
            response = mlgate_error_response(request, exc)
        except Exception as exc:  # noqa: BLE001 - a bug: the generic 500, the traceback in the log
            response = unexpected_error_response(request, exc)
        await response(scope, receive, send)
