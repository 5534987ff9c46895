"""The real app with security as shipped (anonymous access closed), and helpers to make users and keys.

``secure_app(repo, **settings)`` runs the app's lifespan and yields a ``SecureApp``: an httpx client speaking
HTTP to it in-process, and its ``AuthStore`` (the same database the app reads), so a test can create
users and keys exactly as the CLI does and then call the API with them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI
from sklearn.datasets import load_breast_cancer

from mlgate.app import create_app
from mlgate.auth import Actor, AuthStore, Role
from mlgate.settings import Settings
from tests.services import prepare_database

TEST_ACTOR = Actor("test", client="local")
PASSWORD = "correct horse battery"


@dataclass
class SecureApp:
    app: FastAPI
    client: httpx.AsyncClient
    store: AuthStore
    data_dir: Path

    def client_from(self, address: str) -> httpx.AsyncClient:
        """Another client whose TCP peer address is ``address`` (close it after use)."""
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://mlgate.test")

    async def user(self, name: str, role: Role = Role.USER, groups: tuple[str, ...] = ()) -> None:
        await self.store.create_user(name, PASSWORD, role, groups, actor=TEST_ACTOR)

    async def key(self, user: str, **scopes: Any) -> str:
        key, _ = await self.store.create_key(user, scopes.pop("name", "test key"), actor=TEST_ACTOR, **scopes)
        return key

    async def token(self, user: str, password: str = PASSWORD) -> str:
        response = await self.client.post("/api/v1/auth/token", data={"username": user, "password": password})
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


@asynccontextmanager
async def secure_app(repository: Path, **settings: Any) -> AsyncIterator[SecureApp]:
    prepare_database(settings)  # a copy of a migrated template
    data_dir = Path(settings.pop("data_dir"))
    app = create_app(Settings(model_repository=repository, data_dir=data_dir, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mlgate.test") as client:
            yield SecureApp(app, client, app.state.mlgate.security.store, data_dir)


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


ROWS = load_breast_cancer().data[:3]


def v2_body(rows: np.ndarray = ROWS) -> dict[str, Any]:
    return {"inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP64",
                        "data": rows.ravel().tolist()}]}


def v1_body(rows: np.ndarray = ROWS) -> dict[str, Any]:
    return {"instances": rows.tolist()}
