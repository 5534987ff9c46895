"""Refuse request bodies over ``max_body_bytes`` with 413, without reading them.

A declared ``Content-Length`` over the limit fails on the application's first read, before any body byte
is taken; a chunked body fails as soon as the running total passes the limit. The failure is raised as
PayloadTooLarge inside the application, so it is answered by the one error handler like every other error.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Message, Receive, Scope

from mlgate.errors import BadRequest, PayloadTooLarge

__all__ = ["BodyLimit"]


class BodyLimit:
    """Request body limits: ``max_body_bytes`` everywhere, other limits (bytes, setting name) by path prefix."""
    def __init__(self, max_body_bytes: int, path_limits: Mapping[str, tuple[int, str]] | None = None) -> None:
        self.limit = max_body_bytes
        self.path_limits = dict(path_limits or {})
        """Other limits (bytes, setting name) for paths starting with a prefix (e.g. uploads under /api/)."""

    def wrap(self, scope: Scope, receive: Receive) -> Receive:
        """``receive`` for the HTTP request ``scope``, raising BadRequest (a Content-Length that is not a
        number) or PayloadTooLarge (over the path's limit) on the read that finds it."""
        declared: int | None = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                declared = int(value) if value.isdigit() else -1
                break
        limit, setting = self.limit, "max_body_bytes"
        for prefix, (prefix_limit, prefix_setting) in self.path_limits.items():
            if scope["path"].startswith(prefix):
                limit, setting = prefix_limit, prefix_setting
                break
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared < 0:
                raise BadRequest("Content-Length header is not a number", field="headers.content-length")
            if declared is not None and declared > limit:
                raise PayloadTooLarge(limit, setting)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit, setting)
            return message

        return limited_receive
