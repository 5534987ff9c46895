"""The registry's security over real HTTP: the registry REST API, the prediction log and the V2 repository
extension with security as shipped (tests/secure.py), and `mlgate models push` against a real server.

Changes need ``deploy`` on the model, reads a signed-in caller (and show only usable models), the prediction
log ``admin`` (or ``deploy`` on the filtered model); never anonymous; every change is audited.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mlgate.auth import Action, Caller, CallerKind, Policy, Role
from mlgate.catalog.push import loaded_as, push_archive
from mlgate.catalog.store import ArtifactStore
from mlgate.cli.main import app as cli
from mlgate.db.engine import Database
from mlgate.db.queries.catalog import Catalog
from mlgate.db.tables.audit import AuditEntry
from mlgate.errors import Forbidden
from mlgate.model.archives import pack_to_bytes
from mlgate.model.manifest import ModelManifest
from tests.processes import admin_key, serve_process
from tests.registry_helpers import API, ZEROS, versioned_model
from tests.secure import SecureApp, bearer, secure_app, v2_body
from tests.services import migrated_sqlite

pytestmark = pytest.mark.anyio

# One request per registry route; test_the_route_list_is_complete keeps it in step with the app.
ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", f"{API}", {}),
    ("GET", f"{API}/models", {}),
    ("GET", f"{API}/models/sum", {}),
    ("PATCH", f"{API}/models/sum", {"json": {"log_sample_rate": 0.5}}),
    ("POST", f"{API}/models/sum/versions", {}),
    ("GET", f"{API}/models/sum/versions/1", {}),
    ("DELETE", f"{API}/models/sum/versions/1", {}),
    ("PUT", f"{API}/models/sum/aliases/staging", {"json": {"version": "1"}}),
    ("DELETE", f"{API}/models/sum/aliases/staging", {}),
    ("POST", f"{API}/models/sum/promote", {"json": {"version": "1"}}),
    ("POST", f"{API}/models/sum/rollback", {}),
    ("GET", f"{API}/models/sum/traffic", {}),
    ("PUT", f"{API}/models/sum/traffic", {"json": {}}),
    ("GET", f"{API}/predictions", {}),
    ("GET", f"{API}/predictions/export", {}),
    ("POST", "/v2/repository/index", {"json": {}}),
    ("POST", "/v2/repository/models/sum/load", {}),
    ("POST", "/v2/repository/models/sum/unload", {}),
]
CHANGES = [r for r in ROUTES if r[0] != "GET" and r[1] != "/v2/repository/index"]


def _fill(path: str) -> str:
    return (path.replace("{model_name}", "sum").replace("{model_version}", "1").replace("{alias}", "staging"))


async def _push(client: httpx.AsyncClient, name: str, archive: bytes, key: str) -> httpx.Response:
    files = {"file": ("m.tar.gz", io.BytesIO(archive), "application/gzip")}
    return await client.post(f"{API}/models/{name}/versions", files=files, headers=bearer(key))


@pytest.fixture
async def sec(examples_repo: Path) -> AsyncIterator[SecureApp]:
    async with secure_app(examples_repo) as app:
        await app.user("root", Role.ADMIN)
        await app.user("dep", Role.DEPLOYER)
        await app.user("ann")
        yield app


async def _audit(sec: SecureApp) -> list[AuditEntry]:
    async with sec.app.state.mlgate.database.session() as session:
        rows = (await session.execute(select(AuditEntry).where(AuditEntry.target.like("model:%"))
                                      .order_by(AuditEntry.id))).scalars().all()
    return list(rows)


async def test_the_route_list_is_complete(sec: SecureApp) -> None:
    paths = sec.app.openapi()["paths"]  # every route the app serves (include_router nests them)
    served = {(method.upper(), _fill(path)) for path, operations in paths.items() for method in operations
              if path.startswith(("/api/v1/models", "/api/v1/predictions", "/v2/repository")) or path == API}
    assert served == {(method, path) for method, path, _ in ROUTES}


@pytest.mark.parametrize("anonymous_models", [[], ["*"]])
async def test_every_registry_route_is_401_without_credentials(examples_repo: Path,
                                                                anonymous_models: list[str]) -> None:
    """Even where every model is open to anonymous inference (and it is: the V2 call succeeds)."""
    async with secure_app(examples_repo, anonymous_models=anonymous_models) as sec:
        if anonymous_models:
            assert (await sec.client.post("/v2/models/breast-cancer/infer", json=v2_body())).status_code == 200
        for method, path, kw in ROUTES:
            response = await sec.client.request(method, path, **kw)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer"), (method, path)
            assert response.json()["code"] == "unauthenticated"


async def test_a_user_role_key_may_read_but_not_change(sec: SecureApp, tmp_path: Path) -> None:
    root, ann = await sec.key("root"), await sec.key("ann")
    assert (await _push(sec.client, "sum", pack_to_bytes(versioned_model(tmp_path, 1)), root)).status_code == 201
    for method, path, kw in CHANGES:
        response = await sec.client.request(method, path, headers=bearer(ann), **kw)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "forbidden"
    for path in (f"{API}/predictions", f"{API}/predictions/export", f"{API}/predictions?model=sum"):
        assert (await sec.client.get(path, headers=bearer(ann))).status_code == 403, path
    shown = await sec.client.get(f"{API}/models/sum", headers=bearer(ann))
    assert shown.status_code == 200 and shown.json()["serving"]["production"] == "1"
    assert (await sec.client.get(f"{API}/models/sum/traffic", headers=bearer(ann))).status_code == 200
    assert [e["name"] for e in (await sec.client.get(f"{API}/models", headers=bearer(ann))).json()["models"]] \
        == ["sum"]
    assert [e.action for e in await _audit(sec)] == ["model.push"]  # refusals change nothing


async def test_a_deployer_key_scoped_to_one_model(sec: SecureApp, tmp_path: Path) -> None:
    key = await sec.key("dep", models=["sum"])
    one, two = pack_to_bytes(versioned_model(tmp_path, 1)), pack_to_bytes(versioned_model(tmp_path, 2))
    assert (await _push(sec.client, "sum", one, key)).status_code == 201
    assert (await _push(sec.client, "sum", two, key)).status_code == 201
    promoted = await sec.client.post(f"{API}/models/sum/promote", json={"version": "1"}, headers=bearer(key))
    assert promoted.status_code == 200 and promoted.json()["version"] == "1"

    other = versioned_model(tmp_path, 3, name="other")
    refused = await _push(sec.client, "other", pack_to_bytes(other), key)
    assert refused.status_code == 403 and refused.json()["field"] == "model_name"
    # The same 403 for a model that exists (pushed by an admin) and one that does not.
    assert (await _push(sec.client, "other", pack_to_bytes(other), await sec.key("root"))).status_code == 201
    for name in ("other", "ghost"):
        moved = await sec.client.post(f"{API}/models/{name}/promote", json={"version": "1"}, headers=bearer(key))
        assert (moved.status_code, moved.json()["code"]) == (403, "forbidden"), name
        assert (await sec.client.get(f"{API}/models/{name}", headers=bearer(key))).status_code == 403
    listed = (await sec.client.get(f"{API}/models", headers=bearer(key))).json()["models"]
    assert [m["name"] for m in listed] == ["sum"]
    index = (await sec.client.post("/v2/repository/index", json={}, headers=bearer(key))).json()
    assert {e["name"] for e in index} == {"sum"}
    everything = (await sec.client.post("/v2/repository/index", json={}, headers=bearer(await sec.key("root")))).json()
    assert {e["name"] for e in everything} == {"sum", "other", "breast-cancer", "digits"}
    # V2 load/unload: deploy on the model.
    assert (await sec.client.post("/v2/repository/models/sum/unload", headers=bearer(key))).status_code == 200
    assert (await sec.client.post("/v2/repository/models/sum/load", headers=bearer(key))).status_code == 200
    unload = await sec.client.post("/v2/repository/models/breast-cancer/unload", headers=bearer(key))
    assert unload.status_code == 403


async def test_the_prediction_log_is_for_admins_or_the_models_deployers(sec: SecureApp, tmp_path: Path) -> None:
    root, dep = await sec.key("root"), await sec.key("dep", models=["sum"])
    assert (await _push(sec.client, "sum", pack_to_bytes(versioned_model(tmp_path, 1)), root)).status_code == 201
    assert (await sec.client.post("/v2/models/sum/infer", json=ZEROS, headers=bearer(dep))).status_code == 200
    assert (await sec.client.get(f"{API}/predictions", headers=bearer(dep))).status_code == 403
    assert (await sec.client.get(f"{API}/predictions?model=other", headers=bearer(dep))).status_code == 403
    with anyio.fail_after(10):  # the log is written in the background
        while not (await sec.client.get(f"{API}/predictions?model=sum", headers=bearer(dep))).json()["items"]:
            await anyio.sleep(0.05)
    own = await sec.client.get(f"{API}/predictions/export?model=sum", headers=bearer(dep))
    assert own.status_code == 200 and b'"model":"sum"' in own.content.replace(b" ", b"")
    everything = await sec.client.get(f"{API}/predictions", headers=bearer(root))
    assert everything.status_code == 200 and everything.json()["items"][0]["caller"].startswith("key:")


async def test_changes_are_audited_with_the_actor_address_and_request_id(sec: SecureApp, tmp_path: Path) -> None:
    key = await sec.key("dep", models=["sum"])
    prefix = "_".join(key.split("_")[:2])  # mlg_<prefix>_<secret>
    client = sec.client_from("203.0.113.9")
    async with client:
        answers = [await _push(client, "sum", pack_to_bytes(versioned_model(tmp_path, v)), key) for v in (1, 2)]
        answers.append(await client.post(f"{API}/models/sum/promote", json={"version": "1"}, headers=bearer(key)))
        answers.append(await client.post(f"{API}/models/sum/promote", json={"version": "2"}, headers=bearer(key)))
        answers.append(await client.post(f"{API}/models/sum/rollback", headers=bearer(key)))
        answers.append(await client.delete(f"{API}/models/sum/versions/2", headers=bearer(key)))
        answers.append(await client.post("/v2/repository/models/sum/load", headers=bearer(key)))
    assert [a.status_code for a in answers] == [201, 201, 200, 200, 200, 204, 200], [a.text for a in answers]
    rows = await _audit(sec)
    assert [(r.action, r.target) for r in rows] == [
        ("model.push", "model:sum/1"), ("model.push", "model:sum/2"), ("alias.set", "model:sum@production"),
        ("alias.set", "model:sum@production"), ("alias.rollback", "model:sum@production"),
        ("version.delete", "model:sum/2"), ("model.load", "model:sum")]
    assert {r.actor for r in rows} == {f"key:{prefix} (user:dep)"}
    assert {r.client for r in rows} == {"203.0.113.9"}
    assert [r.request_id for r in rows] == [a.headers["x-request-id"] for a in answers]
    assert rows[4].detail == {"version": "1", "previous": "2"}


def _pickle_archive(tmp_path: Path) -> bytes:
    """A model directory whose artifact is a pickle (a sklearn model, as a joblib file would be)."""
    directory = tmp_path / "pickled"
    directory.mkdir()
    (directory / "model.toml").write_text('name = "churn"\nruntime = "sklearn"\nartifact = "model.pkl"\n')
    (directory / "model.pkl").write_bytes(b"\x80\x05N.")  # pickle of None: never loaded here
    return pack_to_bytes(directory)


async def test_a_pickle_pushed_without_the_deploy_right_is_refused_and_nothing_recorded(
        sec: SecureApp, tmp_path: Path) -> None:
    archive = _pickle_archive(tmp_path)
    for key in (await sec.key("ann"), await sec.key("dep", models=["sum"])):
        refused = await _push(sec.client, "churn", archive, key)
        assert refused.status_code == 403, refused.text
    shown = await sec.client.get(f"{API}/models/churn", headers=bearer(await sec.key("root")))
    assert shown.status_code == 404
    assert await _audit(sec) == []
    assert not list((sec.data_dir / "artifacts").rglob("*.tar*"))


async def test_push_checks_every_archive_file_before_storing_or_recording(tmp_path: Path) -> None:
    """The push path's own check (``check_file`` = ``Policy.check_artifact``), below the route's: a caller
    without deploy on the model is refused for a pickle, and neither the store nor the catalog changes."""
    url = migrated_sqlite(tmp_path / "registry.db")
    database = Database(url)
    catalog = Catalog(database)
    store = ArtifactStore(str(tmp_path / "artifacts"), tmp_path / "cache", max_unpacked_bytes=10_000_000)
    predictor = Caller(CallerKind.KEY, "198.51.100.1", username="ann", key_prefix="p", actions=frozenset({
        Action.PREDICT}), model_scopes=(("*",),))
    policy = Policy()
    try:
        with tempfile.TemporaryFile() as fh:
            fh.write(_pickle_archive(tmp_path))
            with pytest.raises(Forbidden) as refused:
                await push_archive(catalog, store, "churn", fh, max_unpacked_bytes=10_000_000,
                                   check_file=lambda path: policy.check_artifact(predictor, "churn", path))
        assert refused.value.field == "artifact" and "model.pkl" in refused.value.message
        assert (await catalog.snapshot()).models == {}
        assert not [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
        # The format is the runtime's: the sklearn runtime loads a "model.bin" with joblib.
        disguised = tmp_path / "disguised"
        disguised.mkdir()
        (disguised / "model.toml").write_text('name = "churn"\nruntime = "sklearn"\nartifact = "model.bin"\n')
        (disguised / "model.bin").write_bytes(b"\x80\x05N.")
        with tempfile.TemporaryFile() as fh:
            fh.write(pack_to_bytes(disguised))
            with pytest.raises(Forbidden, match="model.bin.joblib"):
                await push_archive(catalog, store, "churn", fh, max_unpacked_bytes=10_000_000,
                                   check_file=lambda path: policy.check_artifact(predictor, "churn", path))
        assert (await catalog.snapshot()).models == {}
        # A code-free archive passes the same check.
        safe = tmp_path / "safe"
        safe.mkdir()
        (safe / "model.toml").write_text('name = "churn"\nruntime = "onnx"\nartifact = "model.onnx"\n')
        (safe / "model.onnx").write_bytes(b"not read here")
        with tempfile.TemporaryFile() as fh:
            fh.write(pack_to_bytes(safe))
            info = await push_archive(catalog, store, "churn", fh, max_unpacked_bytes=10_000_000,
                                      check_file=lambda path: policy.check_artifact(predictor, "churn", path))
        assert info.version == "1" and list((await catalog.snapshot()).models) == ["churn"]
    finally:
        await database.dispose()


def test_cli_push_needs_a_key_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    directory = versioned_model(tmp_path, 1)
    runner = CliRunner(env={"MLGATE_API_KEY": None})
    with serve_process(tmp_path / "repo", tmp_path / "serve.log",  # anonymous_models=["*"] here
                       {"MLGATE_ALLOW_EMPTY_REPOSITORY": "true"}) as address:
        url = f"http://{address}"
        refused = runner.invoke(cli, ["models", "push", str(directory), "--url", url])
        assert refused.exit_code == 1
        assert "401" in refused.output and "--api-key" in refused.output and "MLGATE_API_KEY" in refused.output
        assert "Traceback" not in refused.output and isinstance(refused.exception, SystemExit)
        key = admin_key(address)
        pushed = runner.invoke(cli, ["models", "push", str(directory), "--url", url, "--api-key", key,
                                     "--promote", "production"])
        assert pushed.exit_code == 0, pushed.output
        assert "pushed sum version 1" in pushed.output and "production: (none) -> 1" in pushed.output
        assert httpx.post(f"{url}/v2/models/sum/infer", json=ZEROS).json()["model_version"] == "1"


def test_a_tar_member_link_named_like_a_pickle_is_checked_too(tmp_path: Path) -> None:
    """The manifest's artifact is checked by name as well as every file: a link ``model.pkl`` -> ``blob``."""
    directory = tmp_path / "linked"
    directory.mkdir()
    (directory / "model.toml").write_text('name = "churn"\nruntime = "sklearn"\nartifact = "model.pkl"\n')
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(directory / "model.toml", arcname="model.toml")
        blob = tarfile.TarInfo("blob")
        blob.size = 4
        tar.addfile(blob, io.BytesIO(b"\x80\x05N."))
        link = tarfile.TarInfo("model.pkl")
        link.type, link.linkname = tarfile.SYMTYPE, "blob"
        tar.addfile(link)
    seen: list[str] = []

    def check(path: str) -> None:
        seen.append(path)

    async def main() -> None:
        url = migrated_sqlite(tmp_path / "registry.db")
        database = Database(url)
        store = ArtifactStore(str(tmp_path / "artifacts"), tmp_path / "cache", max_unpacked_bytes=10_000_000)
        try:
            with tempfile.TemporaryFile() as fh:
                fh.write(buffer.getvalue())
                await push_archive(Catalog(database), store, "churn", fh, max_unpacked_bytes=10_000_000,
                                   check_file=check)
        finally:
            await database.dispose()

    anyio.run(main)
    assert "model.pkl" in seen and "blob" in seen
    assert loaded_as(ModelManifest(name="m", runtime="sklearn", artifact="model.skops")) == "model.skops"
    assert loaded_as(ModelManifest(name="m", runtime="onnx", artifact="model.onnx")) == "model.onnx"
