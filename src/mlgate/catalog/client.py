"""Talking to a running mlgate server's registry API over HTTP (httpx): what ``mlgate models push``,
``promote`` and ``rollback`` use.

The CLI goes through the server rather than to the database directly, so every push is checked by the same
code as a REST push, the artifact lands in the server's store, and the change is in effect on that server
(and its replicas) when the command returns.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

import httpx

from mlgate.model.archives import pack_directory

__all__ = ["RegistryClient", "RegistryError"]

API = "/api/v1"


class RegistryError(Exception):
    """The server refused a request: ``status`` and its JSON error's ``message`` / ``code``."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(f"{status} {code or ''}: {message}".strip())
        self.status, self.message, self.code = status, message, code


class _Progress:
    """A file object that reports how many bytes have been read from it (for the upload bar)."""

    def __init__(self, fh: IO[bytes], advance: Callable[[int], None]) -> None:
        self._fh, self._advance = fh, advance

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._advance(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


class RegistryClient:
    """A synchronous HTTP client of the catalog's REST API (``/api/v1``), for the CLI.

    Errors come back as ``RegistryError`` with the server's ``{"error", "code", "field"}`` body.
    """
    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float = 300.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
                raise RegistryError(response.status_code, body.get("error", response.text), body.get("code"))
            except ValueError:
                raise RegistryError(response.status_code, response.text[:500]) from None
        return response.json() if response.content else None

    def push(self, directory: Path, name: str, *, version: str | None = None,
             on_packed: Callable[[int], None] | None = None,
             on_sent: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Pack ``directory`` as tar.gz and push it as a version of ``name``; returns the recorded version."""
        with tempfile.TemporaryFile() as fh:
            pack_directory(directory, fh)
            size = fh.tell()
            fh.seek(0)
            if on_packed:
                on_packed(size)
            upload = cast(IO[bytes], _Progress(fh, on_sent or (lambda _n: None)))
            files = {"file": (f"{name}.tar.gz", upload, "application/gzip")}
            data = {"version": version} if version else {}
            result: dict[str, Any] = self._check(self.http.post(f"{API}/models/{name}/versions", files=files,
                                                                data=data))
            return result

    def promote(self, name: str, version: str, alias: str = "production") -> dict[str, Any]:
        """Point ``alias`` (default ``production``) at ``version``; the server loads and warms it first."""
        body = {"version": version, "alias": alias}
        result: dict[str, Any] = self._check(self.http.post(f"{API}/models/{name}/promote", json=body))
        return result

    def rollback(self, name: str, alias: str = "production") -> dict[str, Any]:
        """Move ``alias`` back to the version it pointed at before its last change."""
        result: dict[str, Any] = self._check(self.http.post(f"{API}/models/{name}/rollback", json={"alias": alias}))
        return result

    def traffic(self, name: str) -> dict[str, Any]:
        """``{"canary": {"version", "percent"} | None, "shadow": version | None}``."""
        result: dict[str, Any] = self._check(self.http.get(f"{API}/models/{name}/traffic"))
        return result

    def set_traffic(self, name: str, *, canary: str | None, percent: float, shadow: str | None) -> dict[str, Any]:
        """Set the canary split (``percent`` of requests without a version, 0-100) and the shadow version, both
        at once: None turns one off."""
        body = {"canary": {"version": canary, "percent": percent} if canary else None, "shadow": shadow}
        result: dict[str, Any] = self._check(self.http.put(f"{API}/models/{name}/traffic", json=body))
        return result

    def model(self, name: str) -> dict[str, Any]:
        """The catalog's record of ``name``: versions, aliases, traffic and settings."""
        result: dict[str, Any] = self._check(self.http.get(f"{API}/models/{name}"))
        return result
