"""The artifact store: a local folder by default, any fsspec URL (memory:// here) as an option; archives are
checked against their recorded SHA-256 before they are unpacked and served."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.registry_helpers import answer, promote, push, versioned_model

pytestmark = pytest.mark.anyio


async def test_fsspec_memory_store(app_client: Callable[..., Any], tmp_path: Path, sqlite_url: str) -> None:
    import fsspec

    (tmp_path / "repo").mkdir()
    store = f"memory://mlgate-{uuid.uuid4().hex[:8]}"
    async with app_client(tmp_path / "repo", database_url=sqlite_url, artifact_store=store) as client:
        pushed = (await push(client, "sum", versioned_model(tmp_path, 5))).json()
        assert pushed["artifact_uri"].startswith(store.replace("memory://", "memory:///"))
        assert await answer(client) == ("1", 5.0)
        fs = fsspec.filesystem("memory")
        assert fs.exists(pushed["artifact_uri"])
        await push(client, "sum", versioned_model(tmp_path, 6))
        await promote(client, "sum", "2")
        assert await answer(client) == ("2", 6.0)
        assert (await client.delete(f"/api/v1/models/sum/versions/{pushed['version']}")).status_code == 204
        assert not fs.exists(pushed["artifact_uri"])


async def test_a_tampered_artifact_is_never_served(app_client: Callable[..., Any], tmp_path: Path,
                                                   sqlite_url: str) -> None:
    (tmp_path / "repo").mkdir()
    data_dir = tmp_path / "data"
    async with app_client(tmp_path / "repo", database_url=sqlite_url, data_dir=data_dir) as client:
        first = (await push(client, "sum", versioned_model(tmp_path, 1))).json()
        await push(client, "sum", versioned_model(tmp_path, 2))
        await promote(client, "sum", "2")
        with open(first["artifact_uri"], "ab") as fh:
            fh.write(b"tampered")
        shutil.rmtree(data_dir / "cache" / "sum")
        refused = await promote(client, "sum", "1")
        assert refused.status_code == 409 and "SHA-256" in refused.json()["error"]
        assert await answer(client) == ("2", 2.0)
