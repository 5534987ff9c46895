"""Security headers on every HTTP response.

Always: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``,
``Cross-Origin-Opener-Policy: same-origin`` and a Content-Security-Policy: ``default-src 'none'`` for API
responses (JSON needs nothing), and only ``frame-ancestors 'none'`` for HTML pages (the docs load their own
scripts). ``Strict-Transport-Security`` when ``hsts_max_age_s`` > 0 (only behind HTTPS). Headers the
application set itself are left alone, except an absolute ``Location``, which becomes its path: Starlette
builds redirects (trailing slashes, mounts) from the request's Host header, which the client chooses, and
mlgate never redirects to another site.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["SecurityHeaders"]

Headers = list[tuple[bytes, bytes]]

_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_CSP = b"content-security-policy"
_CSP_API = b"default-src 'none'; frame-ancestors 'none'"
_CSP_HTML = b"frame-ancestors 'none'"


class SecurityHeaders:
    """The security headers of every response (see the module docstring); HSTS when ``hsts_max_age_s`` > 0."""
    def __init__(self, *, hsts_max_age_s: int = 0) -> None:
        hsts = ((b"strict-transport-security", f"max-age={hsts_max_age_s}; includeSubDomains".encode()),)
        extra = (*_ALWAYS, *(hsts if hsts_max_age_s > 0 else ()))
        self._api: Headers = [*extra, (_CSP, _CSP_API)]
        self._html: Headers = [*extra, (_CSP, _CSP_HTML)]
        self.names = frozenset(name for name, _ in self._api)
        """The headers this adds (lower case)."""

    def api(self) -> Headers:
        """The headers of an API (non-HTML) response that sets none of them itself (a new list)."""
        return list(self._api)

    def add(self, headers: Headers) -> None:
        """Add the headers ``headers`` (a response's, lower- or mixed-case names) lacks, in place."""
        present = set()
        html = False
        for i, (key, value) in enumerate(headers):  # one pass: this runs for every response
            key = key.lower()
            present.add(key)
            if key == b"content-type":
                html = html or value.startswith(b"text/html")
            elif key == b"location" and value[:4].lower() == b"http":
                headers[i] = (headers[i][0], _path_of(value))
        ours = self._html if html else self._api
        if present.isdisjoint(self.names):
            headers.extend(ours)
        else:
            headers.extend([(k, v) for k, v in ours if k not in present])


def _path_of(url: bytes) -> bytes:
    """``http://host/a?b#c`` -> ``/a?b#c``."""
    parts = urlsplit(url.decode("latin-1"))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}"
                                                                                if parts.fragment else "")
    return path.encode("latin-1")
