"""The jobs REST API over real HTTP, on the embedded default (the server runs its own jobs; SQLite or
PostgreSQL): submit, poll, result equal to the synchronous answer, cancel, list, caller isolation, bad input,
``Prefer: respond-async`` on V2 and V1, the per-caller queue limit, and a restart that resumes queued jobs."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from mlgate.auth import Role
from tests.fakes import write_python_model
from tests.jobs_helpers import JOBS, jobs_repo, sleepy_body, sum_body, wait_for
from tests.secure import SecureApp, bearer, secure_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return jobs_repo(tmp_path / "models")


@pytest.fixture
async def sec(repo: Path, tmp_path: Path) -> AsyncIterator[SecureApp]:
    async with secure_app(repo, anonymous_models=["sum"], data_dir=tmp_path / "data") as app:
        await app.user("root", Role.ADMIN)
        await app.user("ann")
        await app.user("bob")
        yield app


async def test_a_job_answers_what_the_synchronous_call_answers(sec: SecureApp) -> None:
    ann = bearer(await sec.key("ann"))
    response = await sec.client.post(JOBS, json={"model": "sum", "request": sum_body()}, headers=ann)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"{JOBS}/{job['id']}"
    assert job["status"] in ("queued", "running", "succeeded") and job["model"] == "sum"
    done = await wait_for(sec.client, job["id"], {"succeeded"}, ann)
    assert done["progress"] == 1.0 and done["finished_at"] and done["started_at"] and done["attempts"] == 1
    result = await sec.client.get(f"{JOBS}/{job['id']}/result", headers=ann)
    sync = await sec.client.post("/v2/models/sum/infer", json=sum_body(), headers=ann)
    assert result.status_code == 200 and sync.status_code == 200
    assert result.json() == sync.json()
    assert result.json()["outputs"][0]["data"] == [6.5, 15.5]


async def test_one_caller_cannot_read_list_or_cancel_anothers_job(sec: SecureApp) -> None:
    ann, bob, root = bearer(await sec.key("ann")), bearer(await sec.key("bob")), bearer(await sec.key("root"))
    job = (await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(0.3)}, headers=ann)).json()
    for method, path in [("GET", ""), ("GET", "/result"), ("GET", "/events"), ("DELETE", "")]:
        response = await sec.client.request(method, f"{JOBS}/{job['id']}{path}", headers=bob)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "job_not_found"
    assert (await sec.client.get(JOBS, headers=bob)).json()["items"] == []
    # bob tried to cancel it; it runs on and succeeds for ann
    assert (await wait_for(sec.client, job["id"], {"succeeded", "failed", "cancelled"}, ann))["status"] == "succeeded"
    # another key of ann's is still ann: same owner
    other = bearer(await sec.key("ann", name="second key"))
    assert (await sec.client.get(f"{JOBS}/{job['id']}", headers=other)).status_code == 200
    # an admin sees every job, and can filter by owner
    listed = (await sec.client.get(JOBS, headers=root)).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert (await sec.client.get(JOBS, params={"owner": "user:999"}, headers=root)).json()["items"] == []
    assert (await sec.client.get(f"{JOBS}/{job['id']}/result", headers=root)).status_code == 200


async def test_anonymous_callers_get_401_even_on_an_open_model(sec: SecureApp) -> None:
    assert (await sec.client.post("/v2/models/sum/infer", json=sum_body())).status_code == 200  # open model
    response = await sec.client.post(JOBS, json={"model": "sum", "request": sum_body()})
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    response = await sec.client.post("/v2/models/sum/infer", json=sum_body(), headers={"Prefer": "respond-async"})
    assert response.status_code == 401
    assert (await sec.client.get(JOBS)).status_code == 401
    assert (await sec.client.get(f"{JOBS}/abc")).status_code == 401


async def test_a_running_job_is_cancelled_within_a_second(sec: SecureApp) -> None:
    ann = bearer(await sec.key("ann"))
    job = (await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(5)}, headers=ann)).json()
    await wait_for(sec.client, job["id"], {"running"}, ann)
    started = time.monotonic()
    response = await sec.client.delete(f"{JOBS}/{job['id']}", headers=ann)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert time.monotonic() - started < 1.0
    await anyio.sleep(0.3)
    assert (await sec.client.get(f"{JOBS}/{job['id']}", headers=ann)).json()["status"] == "cancelled"
    result = await sec.client.get(f"{JOBS}/{job['id']}/result", headers=ann)
    assert result.status_code == 409 and result.json()["code"] == "job_not_finished"
    # cancelling again changes nothing
    again = await sec.client.delete(f"{JOBS}/{job['id']}", headers=ann)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


async def test_a_failed_job_keeps_the_error_the_synchronous_call_gives(sec: SecureApp) -> None:
    ann = bearer(await sec.key("ann"))
    job = (await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(1), "timeout_ms": 100},
                                 headers=ann)).json()
    done = await wait_for(sec.client, job["id"], {"succeeded", "failed"}, ann)
    assert done["status"] == "failed" and done["error"]["code"] == "deadline_exceeded"
    result = await sec.client.get(f"{JOBS}/{job['id']}/result", headers=ann)
    assert result.status_code == 504 and result.json()["code"] == "deadline_exceeded"


async def test_list_filters_and_cursor_pages(sec: SecureApp) -> None:
    ann = bearer(await sec.key("ann"))
    ids = []
    for _ in range(5):
        response = await sec.client.post(JOBS, json={"model": "sum", "request": sum_body()}, headers=ann)
        ids.append(response.json()["id"])
    for job_id in ids:
        await wait_for(sec.client, job_id, {"succeeded"}, ann)
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await sec.client.get(JOBS, params=params, headers=ann)).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]  # newest first, each once
    assert len((await sec.client.get(JOBS, params={"status": "succeeded", "model": "sum"}, headers=ann))
               .json()["items"]) == 5
    assert (await sec.client.get(JOBS, params={"status": "queued"}, headers=ann)).json()["items"] == []
    assert (await sec.client.get(JOBS, params={"model": "sleepy"}, headers=ann)).json()["items"] == []
    assert (await sec.client.get(JOBS, params={"since": "2999-01-01T00:00:00Z"}, headers=ann)).json()["items"] == []


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "field"), [
    ("POST", JOBS, {"json": {"model": "nope", "request": sum_body()}}, 404, "model_name"),
    ("POST", JOBS, {"json": {"model": "sum", "version": "9", "request": sum_body()}}, 404, "model_version"),
    ("POST", JOBS, {"json": {"model": "bad name!", "request": sum_body()}}, 400, "model"),
    ("POST", JOBS, {"json": {"model": "sum"}}, 400, "body.request"),
    ("POST", JOBS, {"json": {"model": "sum", "request": sum_body(), "colour": 1}}, 400, "body.colour"),
    ("POST", JOBS, {"json": {"model": "sum", "request": sum_body(), "timeout_ms": -1}}, 400, "body.timeout_ms"),
    ("POST", JOBS, {"json": {"model": "sum", "request": sum_body(), "protocol": "grpc"}}, 400, "body.protocol"),
    ("POST", JOBS, {"json": {"model": "sum", "request": {"inputs": "x"}}}, 400, "inputs"),
    ("POST", JOBS, {"json": {"model": "sum", "request": {"inputs": [{"name": "x", "shape": [1, 3],
                                                                     "datatype": "FP32", "data": [1]}]}}},
     400, "inputs[0].data"),
    ("POST", JOBS, {"json": {"model": "sum", "request": {**sum_body(), "parameters": {"binary_data_output": True}}}},
     400, "parameters.binary_data_output"),
    ("POST", JOBS, {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, None),
    ("GET", f"{JOBS}/not-a-job", {}, 404, "job_id"),
    ("GET", f"{JOBS}/{'x' * 65}", {}, 400, "path.job_id"),
    ("GET", f"{JOBS}/not-a-job/result", {}, 404, "job_id"),
    ("DELETE", f"{JOBS}/not-a-job", {}, 404, "job_id"),
    ("GET", JOBS, {"params": {"status": "done"}}, 400, "status"),
    ("GET", JOBS, {"params": {"model": "bad name!"}}, 400, "model"),
    ("GET", JOBS, {"params": {"since": "yesterday"}}, 400, "since"),
    ("GET", JOBS, {"params": {"limit": 0}}, 400, "query.limit"),
    ("GET", JOBS, {"params": {"cursor": "!!!"}}, 400, "cursor"),
])
async def test_bad_input_is_a_4xx_json_error(sec: SecureApp, method: str, path: str, kwargs: dict[str, Any],
                                             status: int, field: str | None) -> None:
    ann = bearer(await sec.key("ann"))
    headers = {**ann, **kwargs.pop("headers", {})}
    response = await sec.client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code", "field"} and body["error"]
    if field is not None:
        assert body["field"] == field, body


async def test_prefer_respond_async_on_v2_and_v1_answers_202_with_the_job(sec: SecureApp) -> None:
    ann = {**bearer(await sec.key("ann")), "Prefer": "wait=10, respond-async"}
    v2 = await sec.client.post("/v2/models/sum/infer", json=sum_body(), headers=ann)
    assert v2.status_code == 202, v2.text
    assert v2.headers["preference-applied"] == "respond-async"
    location = v2.headers["location"]
    await wait_for(sec.client, location.rsplit("/", 1)[1], {"succeeded"}, ann)
    sync = await sec.client.post("/v2/models/sum/infer", json=sum_body(), headers=bearer(await sec.key("ann")))
    assert (await sec.client.get(f"{location}/result", headers=ann)).json() == sync.json()

    v1 = await sec.client.post("/v1/models/sum:predict", json={"instances": [[1, 2, 3]]}, headers=ann)
    assert v1.status_code == 202, v1.text
    job_id = v1.headers["location"].rsplit("/", 1)[1]
    assert v1.json()["protocol"] == "v1"
    await wait_for(sec.client, job_id, {"succeeded"}, ann)
    assert (await sec.client.get(f"{JOBS}/{job_id}/result", headers=ann)).json() == {"predictions": [6.5]}
    # a bad body is refused at once, not queued
    bad = await sec.client.post("/v2/models/sum/infer", json={"inputs": []}, headers=ann)
    assert bad.status_code == 400


async def test_a_caller_over_its_queued_jobs_gets_429_with_retry_after(repo: Path, tmp_path: Path) -> None:
    async with secure_app(repo, data_dir=tmp_path / "d", jobs_max_queued_per_caller=2, jobs_concurrency=1) as sec:
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        for _ in range(2):
            response = await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(0.5)}, headers=ann)
            assert response.status_code == 202
        refused = await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(0)}, headers=ann)
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1


async def test_queued_jobs_complete_after_a_restart(repo: Path, tmp_path: Path, database_url: str) -> None:
    settings = {"data_dir": tmp_path / "d", "database_url": database_url, "jobs_concurrency": 1}
    async with secure_app(repo, **settings) as sec:
        await sec.user("ann")
        key = await sec.key("ann")
        ids = []
        for i in range(4):
            response = await sec.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(0.3, i)},
                                             headers=bearer(key))
            ids.append(response.json()["id"])
        statuses = [(await sec.client.get(f"{JOBS}/{i}", headers=bearer(key))).json()["status"] for i in ids]
        assert statuses.count("queued") >= 2, statuses
    async with secure_app(repo, **settings) as sec:
        for i, job_id in enumerate(ids):
            await wait_for(sec.client, job_id, {"succeeded"}, bearer(key))
            result = (await sec.client.get(f"{JOBS}/{job_id}/result", headers=bearer(key))).json()
            assert result["outputs"][0]["data"] == [2.0 * i]


def test_cursor_is_opaque_base64() -> None:
    assert base64.urlsafe_b64decode(base64.urlsafe_b64encode(b"12") + b"==") == b"12"


async def test_a_result_past_its_retention_is_expired_and_gone(repo: Path, tmp_path: Path) -> None:
    async with secure_app(repo, data_dir=tmp_path / "d", jobs_result_ttl_s=0.5, jobs_poll_interval_s=0.1) as sec:
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        job = (await sec.client.post(JOBS, json={"model": "sum", "request": sum_body()}, headers=ann)).json()
        done = await wait_for(sec.client, job["id"], {"succeeded", "expired"}, ann)
        assert done["expires_at"] is not None
        await wait_for(sec.client, job["id"], {"expired"}, ann, timeout_s=10)
        gone = await sec.client.get(f"{JOBS}/{job['id']}/result", headers=ann)
        assert gone.status_code == 410 and gone.json()["code"] == "job_expired"


EMBEDDER = '''
import numpy as np

class Model:
    """A tiny embedding model: [characters, vowels, 1.0] per text."""

    def predict(self, batch):
        texts = [t.decode() if isinstance(t, bytes) else str(t) for t in batch["text"]]
        return {"embedding": np.array([[len(t), sum(c in "aeiou" for c in t), 1.0] for t in texts],
                                      dtype=np.float32)}
'''


async def test_prefer_respond_async_on_openai_embeddings_answers_202_and_the_same_body(
        repo: Path, tmp_path: Path) -> None:
    write_python_model(repo, "embedder", EMBEDDER, '[[inputs]]\nname = "text"\ndatatype = "BYTES"\nshape = [-1]\n',
                       '[[outputs]]\nname = "embedding"\ndatatype = "FP32"\nshape = [-1, 3]\n')
    async with secure_app(repo, data_dir=tmp_path / "d") as sec:
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        body = {"model": "embedder", "input": ["hello", "a job"]}
        accepted = await sec.client.post("/v1/embeddings", json=body, headers={**ann, "Prefer": "respond-async"})
        assert accepted.status_code == 202, accepted.text
        assert accepted.headers["preference-applied"] == "respond-async"
        job_id = accepted.headers["location"].rsplit("/", 1)[1]
        assert accepted.json()["protocol"] == "openai" and accepted.json()["model"] == "embedder"
        await wait_for(sec.client, job_id, {"succeeded"}, ann)
        result = await sec.client.get(f"{JOBS}/{job_id}/result", headers=ann)
        sync = await sec.client.post("/v1/embeddings", json=body, headers=ann)
        assert sync.status_code == 200 and result.json() == sync.json()
        assert [d["embedding"] for d in result.json()["data"]] == [[5.0, 2.0, 1.0], [5.0, 2.0, 1.0]]


async def test_a_large_result_goes_to_the_artifact_store_streams_back_and_expiry_deletes_it(
        repo: Path, tmp_path: Path) -> None:
    from mlgate.db.queries.jobs import JobStore

    data = tmp_path / "d"
    async with secure_app(repo, data_dir=data, jobs_result_inline_bytes=300, jobs_result_ttl_s=1.5,
                          jobs_poll_interval_s=0.1) as sec:
        await sec.user("ann")
        ann = bearer(await sec.key("ann"))
        rows = [[float(i), 1.0, 2.0] for i in range(100)]
        small = (await sec.client.post(JOBS, json={"model": "sum", "request": sum_body([[1.0, 1.0, 1.0]])},
                                       headers=ann)).json()
        large = (await sec.client.post(JOBS, json={"model": "sum", "request": sum_body(rows)}, headers=ann)).json()
        for job in (small, large):
            await wait_for(sec.client, job["id"], {"succeeded"}, ann)
        store: JobStore = sec.app.state.mlgate.jobs.store
        kept = await store.get(large["id"])
        assert kept is not None and kept.result is None and kept.result_uri is not None
        stored = Path(kept.result_uri)
        assert stored.is_file() and (data / "artifacts" / "_jobs") in stored.parents
        result = await sec.client.get(f"{JOBS}/{large['id']}/result", headers=ann)
        sync = await sec.client.post("/v2/models/sum/infer", json=sum_body(rows), headers=ann)
        assert result.status_code == 200 and result.headers["content-type"].startswith("application/json")
        assert result.json() == sync.json() and len(result.content) > 300
        inline = await store.get(small["id"])  # a small one stays in the row
        assert inline is not None and inline.result is not None and inline.result_uri is None
        await wait_for(sec.client, large["id"], {"expired"}, ann, timeout_s=10)
        assert not stored.exists()
        gone = await sec.client.get(f"{JOBS}/{large['id']}/result", headers=ann)
        assert gone.status_code == 410 and gone.json()["code"] == "job_expired"


@pytest.fixture
async def sec_db(repo: Path, tmp_path: Path, database_url: str) -> AsyncIterator[SecureApp]:
    """``sec`` on SQLite and on PostgreSQL."""
    async with secure_app(repo, data_dir=tmp_path / "data", database_url=database_url) as app:
        await app.user("root", Role.ADMIN)
        await app.user("ann")
        await app.user("bob")
        yield app


async def test_jobs_are_counted_per_model_in_the_usage_report_and_dashboard(sec_db: SecureApp) -> None:
    from mlgate.predlog.usage import UsageReport
    from mlgate.web.playground import templates

    ann, root = bearer(await sec_db.key("ann")), bearer(await sec_db.key("root"))
    bob_key = await sec_db.key("bob")
    ids = [(await sec_db.client.post(JOBS, json={"model": "sum", "request": sum_body()}, headers=ann)).json()["id"]
           for _ in range(2)]
    ids.append((await sec_db.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(1), "timeout_ms": 100},
                                      headers=ann)).json()["id"])
    for job_id in ids:
        await wait_for(sec_db.client, job_id, {"succeeded", "failed"}, ann)
    cancelled = (await sec_db.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(5)},
                                       headers=ann)).json()["id"]
    await sec_db.client.delete(f"{JOBS}/{cancelled}", headers=ann)
    pending = (await sec_db.client.post(JOBS, json={"model": "sleepy", "request": sleepy_body(5)}, headers=ann)).json()

    report = await sec_db.client.get("/api/v1/usage", headers=root)
    assert report.status_code == 200, report.text
    jobs = {row["name"]: row for row in report.json()["jobs"]}
    assert jobs["sum"] == {"name": "sum", "submitted": 2, "succeeded": 2, "failed": 0, "cancelled": 0, "pending": 0}
    assert jobs["sleepy"] == {"name": "sleepy", "submitted": 3, "succeeded": 0, "failed": 1, "cancelled": 1,
                              "pending": 1}
    assert report.json()["job_totals"]["submitted"] == 5
    prefix = "_".join(bob_key.split("_")[:2])
    assert (await sec_db.client.get(f"/api/v1/usage?key={prefix}", headers=root)).json()["jobs"] == []
    html = templates.env.get_template("dashboard_panel.html").render(
        report=UsageReport.model_validate(report.json()), static="/ui/static")
    table = html.split('id="usage-jobs"', 1)[1].split("</table>", 1)[0]
    assert '<th scope="row">sleepy</th><td class="n">3</td>' in table
    assert '<tr class="totals"><th scope="row">all</th><td class="n">5</td>' in table
    await sec_db.client.delete(f"{JOBS}/{pending['id']}", headers=ann)
    # once their results expired, jobs still count as what they were
    assert len(await sec_db.app.state.mlgate.jobs.store.expire(0.0)) == 5
    after = {row["name"]: row for row in (await sec_db.client.get("/api/v1/usage", headers=root)).json()["jobs"]}
    assert after["sum"] == jobs["sum"]
    assert after["sleepy"] | {"cancelled": 1, "pending": 1} == jobs["sleepy"] and after["sleepy"]["cancelled"] == 2
