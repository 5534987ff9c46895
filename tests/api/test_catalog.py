"""The registry REST API on SQLite and PostgreSQL: push, list, show, delete, aliases, promote, rollback."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlgate.model.archives import pack_to_bytes
from tests.conftest import ClientFactory
from tests.registry_helpers import API, ZEROS, answer, promote, push, versioned_model

pytestmark = pytest.mark.anyio


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "repo").mkdir()
    return tmp_path / "repo"


async def test_push_list_show_and_immutability(app_client: Callable[..., Any], repo: Path, tmp_path: Path,
                                               database_url: str) -> None:
    v1 = pack_to_bytes(versioned_model(tmp_path, 1))
    async with app_client(repo, database_url=database_url) as client:
        response = await push(client, "sum", v1)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["version"] == "1" and body["runtime"] == "python"
        assert body["checksum"] == hashlib.sha256(v1).hexdigest()
        assert body["state"] == "READY"  # no alias yet: the highest version is served

        again = await push(client, "sum", v1, version="1")
        assert again.status_code == 409 and again.json()["code"] == "version_exists"

        v2 = await push(client, "sum", versioned_model(tmp_path, 2))
        assert v2.json()["version"] == "2"  # next number: the manifest sets no version
        named = await push(client, "sum", versioned_model(tmp_path, 7), version="exp-a")
        assert named.json()["version"] == "exp-a"

        listing = (await client.get(f"{API}/models")).json()["models"]
        assert [(m["name"], m["versions"]) for m in listing] == [("sum", ["exp-a", "1", "2"])]
        shown = (await client.get(f"{API}/models/sum")).json()
        assert shown["latest_version"] == "2" and shown["serving"]["production"] == "2"
        assert [v["version"] for v in shown["versions"]] == ["exp-a", "1", "2"]
        version = (await client.get(f"{API}/models/sum/versions/1")).json()
        assert version["checksum_algorithm"] == "sha256" and version["size_bytes"] > 0
        missing = await client.get(f"{API}/models/sum/versions/9")
        assert missing.status_code == 404 and missing.json()["code"] == "model_version_not_found"
        assert (await client.get(f"{API}/models/nope")).json()["code"] == "model_not_found"

        # Without an alias requests go to the highest version; other versions are served once an alias
        # points at them, by version or by alias name.
        assert await answer(client) == ("2", 2.0)
        unserved = await client.post("/v2/models/sum/versions/exp-a/infer", json=ZEROS)
        assert unserved.status_code == 404 and "in the registry but not served here" in unserved.json()["error"]
        await client.put(f"{API}/models/sum/aliases/staging", json={"version": "exp-a"})
        assert await answer(client, version="exp-a") == ("exp-a", 7.0)
        assert await answer(client, version="staging") == ("exp-a", 7.0)
        assert await answer(client) == ("2", 2.0)


async def test_promote_rollback_and_delete_rules(app_client: Callable[..., Any], repo: Path, tmp_path: Path,
                                                 database_url: str) -> None:
    async with app_client(repo, database_url=database_url) as client:
        for v in (1, 2, 3):
            assert (await push(client, "sum", versioned_model(tmp_path, v))).status_code == 201
        assert (await promote(client, "sum", "1")).json()["previous"] is None
        assert await answer(client) == ("1", 1.0)
        assert (await promote(client, "sum", "2")).json()["previous"] == "1"
        assert await answer(client) == ("2", 2.0)
        await promote(client, "sum", "3")
        assert await answer(client) == ("3", 3.0)
        # Versions are reachable through their alias names too, and V1 says which version answered.
        await client.put(f"{API}/models/sum/aliases/staging", json={"version": "1"})
        assert await answer(client, version="staging") == ("1", 1.0)
        v1 = await client.post("/v1/models/sum:predict", json={"instances": [[0, 0, 0]]})
        assert v1.headers["x-model-version"] == "3" and v1.json()["predictions"] == [3.0]

        rolled = (await client.post(f"{API}/models/sum/rollback", json={})).json()
        assert (rolled["previous"], rolled["version"]) == ("3", "2")
        assert await answer(client) == ("2", 2.0)
        assert (await client.post(f"{API}/models/sum/rollback")).json()["version"] == "1"
        assert await answer(client) == ("1", 1.0)
        nothing = await client.post(f"{API}/models/sum/rollback")
        assert nothing.status_code == 409 and nothing.json()["code"] == "conflict"

        # Deleting a version an alias points at is refused; others go, from the catalog and the store.
        refused = await client.delete(f"{API}/models/sum/versions/1")
        assert refused.status_code == 409 and "production" in refused.json()["error"]
        assert (await client.delete(f"{API}/models/sum/versions/3")).status_code == 204
        assert (await client.get(f"{API}/models/sum/versions/3")).status_code == 404
        await client.delete(f"{API}/models/sum/aliases/staging")
        assert (await client.delete(f"{API}/models/sum/aliases/staging")).json()["code"] == "alias_not_found"

        unknown = await promote(client, "sum", "9")
        assert unknown.status_code == 404 and unknown.json()["code"] == "model_version_not_found"
        bad = await client.post(f"{API}/models/sum/promote", json={"version": "../x"})
        assert bad.status_code == 400


async def test_a_version_that_fails_to_load_gets_no_traffic(app_client: Callable[..., Any], repo: Path,
                                                             tmp_path: Path, database_url: str) -> None:
    broken = versioned_model(tmp_path, 2)
    (broken / "model.py").write_text("raise ImportError('broken on purpose')\n")
    async with app_client(repo, database_url=database_url) as client:
        await push(client, "sum", versioned_model(tmp_path, 1))
        await promote(client, "sum", "1")
        assert (await push(client, "sum", broken)).status_code == 201
        refused = await promote(client, "sum", "2")
        assert refused.status_code == 409 and "failed to load" in refused.json()["error"]
        assert await answer(client) == ("1", 1.0)
        shown = (await client.get(f"{API}/models/sum")).json()
        assert shown["aliases"] == {"production": "1"}


async def test_a_folder_model_keeps_its_name(app_client: Callable[..., Any], examples_repo: Path, tmp_path: Path,
                                             sqlite_url: str) -> None:
    directory = versioned_model(tmp_path, 5, name="digits")
    async with app_client(examples_repo, database_url=sqlite_url) as client:
        # The folder's model wins: the push is refused up front, not recorded to be refused at promote.
        refused = await push(client, "digits", directory, version="5")
        assert refused.status_code == 409 and "model repository folder" in refused.json()["error"]
        assert (await promote(client, "digits", "5")).status_code in (404, 409)
        meta = (await client.get("/v2/models/digits")).json()
        assert meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"


@pytest.mark.anyio
async def test_the_operator_can_turn_the_registry_api_off(examples_repo: Path, app_client: ClientFactory) -> None:
    """registry_api=False: the registry routes are gone (even for an admin), inference still serves."""
    async with app_client(examples_repo, registry_api=False) as client:
        for method, path in (("GET", "/api/v1/models"), ("POST", "/api/v1/models/x/versions"),
                             ("GET", "/api/v1/predictions"), ("POST", "/v2/repository/index")):
            response = await client.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
        assert (await client.get("/v2/health/ready")).status_code == 200
