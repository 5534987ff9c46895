"""The admin's models page over real HTTP: what this server serves, from which source, and why a model is not
ready (its load error), next to the registry's models."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from mlgate.auth import Role
from tests.fakes import write_python_model
from tests.secure import secure_app, v2_body
from tests.web.test_admin import signed_in

pytestmark = pytest.mark.anyio


async def test_the_models_page_shows_what_serves_and_why_a_model_is_not_ready(
        examples_repo: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(examples_repo / "breast-cancer", root / "breast-cancer")
    write_python_model(root, "broken", "raise ImportError('no module named secret_dependency')\n",
                       '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1, 1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')
    async with secure_app(root) as sec:
        await sec.user("root", Role.ADMIN)
        async with signed_in(sec) as (client, _):
            page = (await client.get("/admin/models")).text
    served = re.search(r'<table[^>]*id="served">(.*?)</table>', page, re.S)
    assert served, "no table of served models"
    rows = dict(re.findall(r'<tr data-model="([^"]+)" data-version="1">(.*?)</tr>', served.group(1), re.S))
    assert set(rows) == {"breast-cancer", "broken"}
    assert "READY" in rows["breast-cancer"] and "repository folder" in rows["breast-cancer"]
    assert "FAILED" in rows["broken"] and "no module named secret_dependency" in rows["broken"]
    # The empty registry names a command that exists.
    assert "mlgate models push" in page and "<code>mlgate push</code>" not in page


async def test_the_prediction_log_table_shows_the_error_code_and_the_anonymous_caller(examples_repo: Path) -> None:
    async with secure_app(examples_repo, anonymous_models=["breast-cancer"], prediction_log_interval_s=0.05) as sec:
        await sec.user("root", Role.ADMIN)
        bad = {"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP64", "data": [0, 0]}]}
        assert (await sec.client.post("/v2/models/breast-cancer/infer", json=bad)).status_code == 400
        async with signed_in(sec) as (client, _):
            with anyio.fail_after(10):
                while "invalid_input" not in (page := (await client.get("/admin/prediction-record/list")).text):
                    await anyio.sleep(0.05)
    assert "anonymous" in page and "None" not in page


async def test_a_registry_model_shadowed_by_a_folder_model_says_so(examples_repo: Path, tmp_path: Path) -> None:
    from tests.registry_helpers import push, versioned_model
    from tests.secure import bearer

    root, data = tmp_path / "repo", tmp_path / "data"
    shutil.copytree(examples_repo / "breast-cancer", root / "breast-cancer")
    async with secure_app(root, data_dir=data) as sec:
        await sec.user("root", Role.ADMIN)
        pushed = await push(sec.client, "sum", versioned_model(tmp_path / "pushed", 1),
                            headers=bearer(await sec.key("root")))
        assert pushed.status_code == 201, pushed.text
    shutil.copytree(versioned_model(tmp_path / "folder", 2), root / "sum")  # a folder model of the same name
    async with secure_app(root, data_dir=data) as sec, signed_in(sec) as (client, _):
        page = (await client.get("/admin/models")).text
    registry = dict(re.findall(r'<tr data-model="([^"]+)">(.*?)</tr>', page, re.S))
    assert "Not served here" in registry["sum"]
    served = dict(re.findall(r'<tr data-model="([^"]+)" data-version="[^"]+">(.*?)</tr>', page, re.S))
    assert "repository folder" in served["sum"]


async def test_times_show_to_the_second_in_utc(examples_repo: Path) -> None:
    async with secure_app(examples_repo, anonymous_models=["breast-cancer"], prediction_log_interval_s=0.05) as sec:
        await sec.user("root", Role.ADMIN)
        await sec.key("root", name="laptop", expires_at=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
        assert (await sec.client.post("/v2/models/breast-cancer/infer", json=v2_body())).status_code == 200
        async with signed_in(sec) as (client, _):
            identities = (await client.get("/admin/identities")).text
            with anyio.fail_after(10):
                while "breast-cancer" not in (log := (await client.get("/admin/prediction-record/list")).text):
                    await anyio.sleep(0.05)
            keys = (await client.get("/admin/api-key/list")).text
    assert "2030-01-02 03:04:05 UTC" in identities and "678901" not in identities
    assert "2030-01-02 03:04:05 UTC" in keys and "+00:00" not in keys
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", log) and not re.search(r"\d\d:\d\d:\d\d\.\d+", log)


def test_the_docs_name_the_dashboard_s_default_range() -> None:
    from mlgate.predlog.usage import DEFAULT_RANGE_S, DEFAULT_STEP_S

    page = (Path(__file__).parents[2] / "docs" / "web.md").read_text()
    assert (DEFAULT_RANGE_S, DEFAULT_STEP_S) == (3600, 60)
    assert "opens on the last hour, in steps of 60 s" in page


async def test_the_dashboard_opens_on_the_documented_range_with_readable_times(examples_repo: Path) -> None:
    async with secure_app(examples_repo) as sec:
        await sec.user("root", Role.ADMIN)
        async with signed_in(sec) as (client, _):
            page = (await client.get("/admin/dashboard")).text
            # The range shown in the form is what the form sends back (naive times are UTC).
            start = re.search(r'name="start" value="([^"]+)"', page)
            end = re.search(r'name="end" value="([^"]+)"', page)
            assert start and end
            again = await client.get("/admin/dashboard", params={"start": start.group(1), "end": end.group(1)})
            assert again.status_code == 200
    summary = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) to (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC,\s+steps of (\d+) s",
                        page)
    assert summary, "no summary of the range"
    first, last = (datetime.strptime(summary.group(i), "%Y-%m-%d %H:%M:%S") for i in (1, 2))
    assert ((last - first).total_seconds(), int(summary.group(3))) == (3600, 60)  # as docs/web.md says
    assert (start.group(1), end.group(1)) == (summary.group(1), summary.group(2))
    assert not re.search(r"\d\d:\d\d:\d\d(\.\d+|\+00:00)", page)  # no raw times anywhere on the page
