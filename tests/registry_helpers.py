"""Helpers of the registry tests: versioned model directories whose answer names their version, and pushes.

``versioned_model(root, v)`` is the python-runtime ``sum`` model with ``offset = v``: for an input of zeros
it answers ``v``, so every answer says which version computed it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx

from mlgate.model.archives import pack_to_bytes
from tests.fakes import sum_model

API = "/api/v1"
ZEROS = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]}


def versioned_model(root: Path, version: int, name: str = "sum") -> Path:
    """A model directory for ``name`` whose answer to zeros is ``version`` (no version in its manifest)."""
    directory = sum_model(root / f"{name}-v{version}", offset=float(version))
    toml = (directory / "model.toml").read_text().replace('name = "sum"', f'name = "{name}"')
    (directory / "model.toml").write_text(toml.replace('version = "1"\n', ""))
    return directory


async def push(client: httpx.AsyncClient, name: str, directory: Path | bytes, version: str | None = None,
               filename: str = "model.tar.gz", **kw: Any) -> httpx.Response:
    """Push a model directory (packed as tar.gz) or an archive's bytes as given."""
    data = {"version": version} if version else {}
    content = directory if isinstance(directory, bytes) else pack_to_bytes(directory)
    files = {"file": (filename, io.BytesIO(content), "application/octet-stream")}
    return await client.post(f"{API}/models/{name}/versions", files=files, data=data, **kw)


async def promote(client: httpx.AsyncClient, name: str, version: str, alias: str = "production") -> httpx.Response:
    return await client.post(f"{API}/models/{name}/promote", json={"version": version, "alias": alias})


async def answer(client: httpx.AsyncClient, name: str = "sum", version: str | None = None,
                 **kw: Any) -> tuple[str, float]:
    """(model_version of the V2 answer, the value it computed) for an input of zeros."""
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
    response = await client.post(path, json=ZEROS, **kw)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["model_version"], body["outputs"][0]["data"][0]
