"""The V2 model repository extension on both sources: the repository folder and the database registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.registry_helpers import ZEROS, answer, promote, push, versioned_model

pytestmark = pytest.mark.anyio


async def test_index_load_and_unload(app_client: Callable[..., Any], examples_repo: Path, tmp_path: Path,
                                     database_url: str) -> None:
    async with app_client(examples_repo, database_url=database_url) as client:
        for v in (1, 2):
            await push(client, "sum", versioned_model(tmp_path, v))
        await promote(client, "sum", "1")
        index = (await client.post("/v2/repository/index")).json()
        assert [(e["name"], e["version"], e["state"]) for e in index] == [
            ("breast-cancer", "1", "READY"), ("digits", "1", "READY"), ("sum", "1", "READY"),
            ("sum", "2", "UNAVAILABLE")]
        ready = (await client.post("/v2/repository/index", json={"ready": True})).json()
        assert {e["name"] for e in ready} == {"breast-cancer", "digits", "sum"} and len(ready) == 3

        # A registry model.
        assert (await client.post("/v2/repository/models/sum/unload")).status_code == 200
        gone = await client.post("/v2/models/sum/infer", json=ZEROS)
        assert gone.status_code == 404
        assert (await client.get("/v2/models/sum/ready")).status_code == 404
        assert (await client.post("/v2/repository/models/sum/load")).status_code == 200
        assert await answer(client) == ("1", 1.0)

        # A folder model.
        rows = {"instances": [[0.0] * 30]}
        assert (await client.post("/v2/repository/models/breast-cancer/unload")).status_code == 200
        assert (await client.post("/v1/models/breast-cancer:predict", json=rows)).status_code == 404
        assert (await client.post("/v2/repository/models/breast-cancer/load")).status_code == 200
        assert (await client.post("/v1/models/breast-cancer:predict", json=rows)).status_code == 200

        missing = await client.post("/v2/repository/models/nope/load")
        assert missing.status_code == 404 and missing.json()["code"] == "model_not_found"
        assert (await client.post("/v2/repository/models/nope/unload")).status_code == 404
