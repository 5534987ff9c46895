"""Who may read ``/metrics`` (setting ``metrics``: open, token, off), over real HTTP against the real app with
security as shipped. The metrics name every model, closed ones included."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlgate.auth import Role
from mlgate.settings import Settings
from tests.secure import bearer, secure_app

pytestmark = pytest.mark.anyio

TOKEN = "scrape-token-0123456789"


async def test_open_by_default(examples_repo: Path) -> None:
    async with secure_app(examples_repo) as sec:
        response = await sec.client.get("/metrics")
        assert response.status_code == 200 and "mlgate_" in response.text


async def test_token(examples_repo: Path) -> None:
    async with secure_app(examples_repo, metrics="token", metrics_token=TOKEN) as sec:
        await sec.user("root", Role.ADMIN)
        missing = await sec.client.get("/metrics")
        assert missing.status_code == 401 and missing.json()["code"] == "unauthenticated", missing.text
        assert "metrics_token" in missing.json()["error"]
        for wrong in ("nope", await sec.key("root")):  # an API key is not the scrape token
            refused = await sec.client.get("/metrics", headers=bearer(wrong))
            assert refused.status_code == 401 and refused.json()["code"] == "invalid_credentials", refused.text
            assert "breast-cancer" not in refused.text
        allowed = await sec.client.get("/metrics", headers=bearer(TOKEN))
        assert allowed.status_code == 200 and "mlgate_" in allowed.text


async def test_off(examples_repo: Path) -> None:
    async with secure_app(examples_repo, metrics="off") as sec:
        assert (await sec.client.get("/metrics")).status_code == 404
        assert "/metrics" not in (await sec.client.get("/openapi.json")).json()["paths"]


def test_settings() -> None:
    assert Settings(metrics=False).metrics == "off"
    assert Settings(metrics="true").metrics == "open"
    with pytest.raises(ValidationError, match="metrics_token"):
        Settings(metrics="token")
