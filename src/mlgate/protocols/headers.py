"""Request headers read straight from the ASGI scope.

Starlette's ``request.headers`` builds a ``Headers`` mapping and answers a missing header by raising and
catching KeyError; the inference routes ask for a handful of headers that are usually absent on every
request, so they scan the raw list instead. Names are lower-case bytes, as ASGI servers deliver them
(ASGI HTTP spec: "header names should be lowercased").
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

__all__ = ["cacheable", "header", "header_values"]


def header(request: HTTPConnection, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes), decoded as latin-1; None when absent."""
    for key, value in request.scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def header_values(request: HTTPConnection, name: bytes) -> list[str]:
    """Every value of header ``name`` (lower-case bytes), in order."""
    return [value.decode("latin-1") for key, value in request.scope["headers"] if key == name]


def cacheable(request: HTTPConnection) -> bool:
    """False when the request says ``Cache-Control: no-cache`` or ``no-store`` (RFC 9111 section 5.2.1): the
    response cache of a model with a manifest ``[cache]`` then neither answers nor stores it."""
    for value in header_values(request, b"cache-control"):
        for directive in value.split(","):
            if directive.split("=", 1)[0].strip().lower() in ("no-cache", "no-store"):
                return False
    return True
