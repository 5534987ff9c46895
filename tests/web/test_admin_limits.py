"""Admin request bodies: over the limit is a 413 JSON error (never a 500), and the push form takes archives
up to the registry's upload limit, as the REST route does. Real app, real HTTP (ASGI), security as shipped."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mlgate.auth import Role
from mlgate.model.archives import pack_to_bytes
from tests.registry_helpers import versioned_model
from tests.secure import SecureApp, secure_app
from tests.web.test_admin import csrf_of, signed_in

pytestmark = pytest.mark.anyio

LIMIT = 700


@pytest.fixture
async def small(examples_repo: Path) -> AsyncIterator[SecureApp]:
    async with secure_app(examples_repo, max_body_bytes=LIMIT, registry_max_upload_bytes=100_000) as app:
        await app.user("root", Role.ADMIN)
        yield app


def _too_large(response: httpx.Response, setting: str = "max_body_bytes") -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["code"] == "payload_too_large" and setting in body["error"], body


async def test_oversized_admin_posts_are_413(small: SecureApp) -> None:
    big = "x" * (LIMIT * 3)
    async with small.client_from("127.0.0.1") as anonymous:
        token = csrf_of((await anonymous.get("/admin/login")).text)
        _too_large(await anonymous.post("/admin/login", data={"username": "root", "password": big,
                                                              "csrf_token": token}))
    async with signed_in(small) as (client, token):
        _too_large(await client.post("/admin/identities/users", data={"username": big, "csrf_token": token}))
        _too_large(await client.post("/admin/identities/users", content=big.encode(),
                                     headers={"content-type": "application/x-www-form-urlencoded",
                                              "x-csrf-token": token}))
        assert (await client.get("/admin/identities")).status_code == 200  # still signed in, still serving


async def test_push_form_takes_archives_up_to_the_registry_limit(small: SecureApp, tmp_path: Path) -> None:
    archive = pack_to_bytes(versioned_model(tmp_path, 3))
    padding = "p" * LIMIT  # a larger body than max_body_bytes, well under registry_max_upload_bytes
    async with signed_in(small) as (client, token):
        response = await client.post("/admin/models/push", data={"model": "sum", "csrf_token": token,
                                                                  "note": padding},
                                     files={"archive": ("sum.tar.gz", io.BytesIO(archive), "application/gzip")})
        assert response.status_code == 303, response.text
        huge = io.BytesIO(b"\x1f\x8b" + b"\x00" * 120_000)
        _too_large(await client.post("/admin/models/push", data={"model": "sum", "csrf_token": token},
                                     files={"archive": ("sum.tar.gz", huge, "application/gzip")}),
                   "registry_max_upload_bytes")
    snapshot = await small.app.state.mlgate.control.catalog.snapshot()
    assert list(snapshot.models["sum"].versions) == ["1"]
