"""``Deprecation`` (RFC 9745) and ``Sunset`` (RFC 8594) on responses of deprecated API versions.

Every response under ``/api/<version>/`` of a version in the map gets both headers, errors included, so
a client learns of the deprecation on whatever call it makes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from email.utils import format_datetime

__all__ = ["DeprecationHeaders"]


def _headers(deprecated: date, sunset: date) -> list[tuple[bytes, bytes]]:
    since = datetime(deprecated.year, deprecated.month, deprecated.day, tzinfo=UTC)
    until = datetime(sunset.year, sunset.month, sunset.day, tzinfo=UTC)
    return [(b"deprecation", f"@{int(since.timestamp())}".encode()),
            (b"sunset", format_datetime(until, usegmt=True).encode())]


class DeprecationHeaders:
    """The ``Deprecation`` and ``Sunset`` headers of each deprecated API version (``versions``: version ->
    (deprecated on, sunset on)).
    """
    def __init__(self, versions: Mapping[str, tuple[date, date]], prefix: str = "/api/") -> None:
        self.prefix = prefix
        self.headers = {f"{prefix}{v}/": _headers(d, s) for v, (d, s) in versions.items()}

    def of(self, path: str) -> list[tuple[bytes, bytes]]:
        """The headers of a response to ``path``: both, under a deprecated version; else none."""
        if not self.headers or not path.startswith(self.prefix):
            return []
        return next((h for p, h in self.headers.items() if path.startswith(p) or path + "/" == p), [])
