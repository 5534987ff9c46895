"""API versioning: the registry API lives under /api/<version>; handlers see the version; a deprecated
version answers with Deprecation (RFC 9745) and Sunset (RFC 8594) headers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlgate.api import versioning

pytestmark = pytest.mark.anyio


async def test_current_version_has_no_deprecation_headers(app_client: Callable[..., Any], tmp_path: Path) -> None:
    async with app_client(tmp_path) as client:
        response = await client.get("/api/v1")
        assert response.json() == {"api_version": "v1", "deprecated": False}
        assert "deprecation" not in response.headers and "sunset" not in response.headers
        assert (await client.get("/api/v9/models")).status_code == 404


async def test_a_deprecated_version_still_answers_with_deprecation_and_sunset(
    app_client: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(versioning, "API_VERSIONS", ("v0", "v1"))
    deprecated = {"v0": {"deprecated": "2026-01-01", "sunset": "2027-07-01"}}
    async with app_client(tmp_path, deprecated_api_versions=deprecated) as client:
        old = await client.get("/api/v0")
        assert old.json() == {"api_version": "v0", "deprecated": True}
        assert old.headers["deprecation"] == "@1767225600"
        assert old.headers["sunset"] == "Thu, 01 Jul 2027 00:00:00 GMT"
        listing = await client.get("/api/v0/models")
        assert listing.status_code == 200 and "sunset" in listing.headers
        error = await client.get("/api/v0/models/nope")
        assert error.status_code == 404 and error.headers["deprecation"] == "@1767225600"
        current = await client.get("/api/v1")
        assert current.json() == {"api_version": "v1", "deprecated": False}
        assert "deprecation" not in current.headers
