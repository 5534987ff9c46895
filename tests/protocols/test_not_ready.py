"""Why a model is not ready: the reason in the metadata, readiness and repository-index answers, for callers
with the deploy right on the model only (a predict-only caller learns that it is not ready, not why)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mlgate.auth import Role
from tests.fakes import write_python_model
from tests.secure import SecureApp, bearer, secure_app

pytestmark = pytest.mark.anyio

UNKNOWN = "unknown runtime 'caffe2'"


@pytest.fixture
async def sec(examples_repo: Path, tmp_path: Path) -> AsyncIterator[SecureApp]:
    root = tmp_path / "repo"
    shutil.copytree(examples_repo / "breast-cancer", root / "breast-cancer")
    write_python_model(root, "broken", "raise ImportError('no module named secret_dependency')\n",
                       '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1, 1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')
    (root / "tf").mkdir()
    (root / "tf" / "model.toml").write_text('name = "tf"\nversion = "1"\nruntime = "caffe2"\n'
                                            'artifact = "saved_model"\n')
    async with secure_app(root) as app:
        await app.user("dep", Role.DEPLOYER)
        await app.user("ann", Role.USER)
        yield app


async def test_a_deployer_sees_why_a_model_is_not_ready(sec: SecureApp) -> None:
    deployer = bearer(await sec.key("dep"))
    ready = await sec.client.get("/v2/models/tf/ready", headers=deployer)
    assert ready.status_code == 400
    assert ready.json()["ready"] is False and UNKNOWN in ready.json()["reason"]
    versioned = await sec.client.get("/v2/models/broken/versions/1/ready", headers=deployer)
    assert versioned.status_code == 400 and "secret_dependency" in versioned.json()["reason"]

    metadata = await sec.client.get("/v2/models/tf", headers=deployer)
    assert metadata.status_code == 503 and UNKNOWN in metadata.json()["error"]
    v1 = await sec.client.get("/v1/models/broken", headers=deployer)
    assert v1.status_code == 200 and v1.json()["ready"] is False
    assert "secret_dependency" in v1.json()["reason"]

    index = await sec.client.post("/v2/repository/index", json={}, headers=deployer)
    entries = {entry["name"]: entry for entry in index.json()}
    assert entries["tf"]["state"] == "FAILED" and UNKNOWN in entries["tf"]["reason"]
    assert entries["breast-cancer"]["state"] == "READY" and not entries["breast-cancer"]["reason"]

    # A ready model's answers stay as they were.
    fine = await sec.client.get("/v2/models/breast-cancer/ready", headers=deployer)
    assert fine.json() == {"name": "breast-cancer", "version": "1", "ready": True}


async def test_a_predict_only_caller_learns_that_not_why(sec: SecureApp) -> None:
    user = bearer(await sec.key("ann"))
    ready = await sec.client.get("/v2/models/broken/ready", headers=user)
    assert ready.status_code == 400 and ready.json() == {"name": "broken", "version": "1", "ready": False}
    metadata = await sec.client.get("/v2/models/broken", headers=user)
    assert metadata.status_code == 503 and "not ready" in metadata.json()["error"]
    assert "secret_dependency" not in metadata.text
    v1 = await sec.client.get("/v1/models/broken", headers=user)
    assert v1.json()["ready"] is False and "secret_dependency" not in v1.text
