"""Folder models and registry models of the same name: one rule (the folder's model wins on the server that
has it, so a push of that name is refused up front with the reason), and the V2 repository extension's load
picks up a model directory added to the folder without a restart. Real HTTP against the app."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import serve_app
from tests.registry_helpers import API, push, versioned_model

pytestmark = pytest.mark.anyio


async def test_a_push_named_like_a_folder_model_is_refused_with_the_reason(examples_repo: Path,
                                                                            tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(examples_repo / "breast-cancer", root / "breast-cancer")
    async with serve_app(root) as client:
        refused = await push(client, "breast-cancer", versioned_model(tmp_path, 1))
        assert refused.status_code == 409, refused.text
        assert refused.json()["field"] == "model_name" and "repository folder" in refused.json()["error"]
        assert (await client.get(f"{API}/models/breast-cancer")).status_code == 404  # nothing recorded
        assert (await push(client, "sum", versioned_model(tmp_path / "other", 1))).status_code == 201


async def test_load_picks_up_a_model_directory_added_to_the_folder(examples_repo: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(examples_repo / "breast-cancer", root / "breast-cancer")
    async with serve_app(root) as client:
        assert (await client.get("/v2/models/digits/ready")).status_code == 404
        shutil.copytree(examples_repo / "digits", root / "digits")
        loaded = await client.post("/v2/repository/models/digits/load")
        assert loaded.status_code == 200, loaded.text
        assert (await client.get("/v2/models/digits/ready")).status_code == 200
        index = {e["name"]: e["state"] for e in (await client.post("/v2/repository/index", json={})).json()}
        assert index == {"breast-cancer": "READY", "digits": "READY"}
        # A name in neither the folder nor the registry is still a 404.
        assert (await client.post("/v2/repository/models/nothing-here/load")).status_code == 404
