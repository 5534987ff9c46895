"""The request id: the caller's ``X-Request-ID`` when it is sane, else a new one (32 hex digits).

``EdgeMiddleware`` binds it into structlog's context for every log line of the request, stores it in
the request's ``RequestState`` and returns it in the ``X-Request-ID`` response header.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

__all__ = ["HEADER", "request_id_of"]

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The id of a request with these (ASGI, lower-case) headers: the caller's X-Request-ID when it is 1-128
    characters of ``A-Za-z0-9._:-``, else 128 random bits as 32 hex digits."""
    for key, value in headers:
        if key == HEADER:
            if _SANE.match(value):
                return value.decode("ascii")
            break
    return os.urandom(16).hex()
