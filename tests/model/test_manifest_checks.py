"""Manifests are checked when loaded and when pushed: repeated tensor names, a name other than the pushed one,
a second manifest in the archive, and manifests or descriptions past their size bound are refused with the
reason (a folder model is not ready; a push is a 400). Real app, real HTTP (ASGI), the python-runtime sum model.
Before: a repeated output loaded, and every V1 request to it was a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlgate.model.manifest import MAX_DESCRIPTION_CHARS, MAX_MANIFEST_BYTES
from tests.catalog.test_push_archives import member, model_members, tar_gz
from tests.fakes import sum_model
from tests.registry_helpers import API, ZEROS, push, versioned_model

pytestmark = pytest.mark.anyio

REPEATED_OUTPUT = '\n[[outputs]]\nname = "sum"\ndatatype = "FP32"\nshape = [-1]\n'
REPEATED_INPUT = '\n[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1, 3]\n'


@pytest.mark.parametrize(("extra", "words"), [(REPEATED_OUTPUT, "output 'sum'"), (REPEATED_INPUT, "input 'x'")])
async def test_folder_model_with_a_repeated_tensor_name_is_not_ready(
    app_client: Callable[..., Any], tmp_path: Path, extra: str, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    directory = sum_model(tmp_path / "repo")
    with (directory / "model.toml").open("a") as fh:
        fh.write(extra)
    async with app_client(tmp_path / "repo") as client:
        ready = await client.get("/v2/models/sum/ready")
        assert ready.status_code == 400 and ready.json()["ready"] is False, ready.text
        for url, body in (("/v2/models/sum/infer", ZEROS), ("/v1/models/sum:predict", {"instances": [[0, 0, 0]]})):
            response = await client.post(url, json=body)
            assert response.status_code == 503 and response.json()["code"] == "model_not_ready", response.text
    # The reason is in the server log (callers see it with issue 16's item 12).
    assert any(f"{words} is declared twice" in record.getMessage() for record in caplog.records)


async def test_pushed_manifests_are_checked(app_client: Callable[..., Any], tmp_path: Path, sqlite_url: str) -> None:
    model_dir = versioned_model(tmp_path, 1)  # its model.toml names "sum" and sets no version
    toml = (model_dir / "model.toml").read_bytes()
    other_name = tar_gz(*[(i, d) for i, d in model_members(model_dir) if i.name != "model.toml"],
                        (member("model.toml"), toml.replace(b'name = "sum"', b'name = "other"')))
    second = tar_gz(*model_members(model_dir), (member("extra/model.toml"), toml))
    mlmodel_too = tar_gz(*model_members(model_dir), (member("MLmodel"), b"flavors: {}\n"))
    huge = tar_gz(*[(i, d) for i, d in model_members(model_dir) if i.name != "model.toml"],
                  (member("model.toml"), toml + b"\n# " + b"x" * MAX_MANIFEST_BYTES + b"\n"))
    long_text = toml.replace(b'name = "sum"', b'name = "sum"\ndescription = "' + b"d" * (MAX_DESCRIPTION_CHARS + 1)
                             + b'"')
    long_description = tar_gz(*[(i, d) for i, d in model_members(model_dir) if i.name != "model.toml"],
                              (member("model.toml"), long_text))
    repeated = tar_gz(*[(i, d) for i, d in model_members(model_dir) if i.name != "model.toml"],
                      (member("model.toml"), toml + REPEATED_OUTPUT.encode()))
    cases = [(other_name, "'other'"), (second, "extra/model.toml"), (mlmodel_too, "MLmodel"),
             (huge, f"{MAX_MANIFEST_BYTES} bytes"), (long_description, "description"), (repeated, "twice")]
    (tmp_path / "repo").mkdir()
    async with app_client(tmp_path / "repo", database_url=sqlite_url) as client:
        for archive, words in cases:
            response = await push(client, "sum", archive)
            assert response.status_code == 400, (words, response.text)
            assert words in response.json()["error"], (words, response.json())
        assert (await client.get(f"{API}/models")).json()["models"] == []
        assert (await push(client, "sum", model_dir)).status_code == 201


def _with_example(directory: Path, example: str) -> Path:
    toml = directory / "model.toml"
    toml.write_text(toml.read_text().replace("shape = [-1, 3]\n", f"shape = [-1, 3]\nexample = {example}\n", 1))
    return directory


@pytest.mark.parametrize(("example", "words"), [
    ("[1.0, 2.0]", "example: 2 values, the input's dimension is 3"),
    ("[[1.0, 2.0, 3.0]]", "example: 1 values"),
    ('[1.0, "two", 3.0]', "example: 'two' is not a number"),
    ("[1.0, inf, 3.0]", "example: inf is not finite"),
    ("1.0", "example: a list was expected"),
])
async def test_an_example_row_that_does_not_fit_the_input_is_refused_at_load(
    app_client: Callable[..., Any], tmp_path: Path, example: str, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    _with_example(sum_model(tmp_path / "repo"), example)
    async with app_client(tmp_path / "repo") as client:
        ready = await client.get("/v2/models/sum/ready")
        assert ready.status_code == 400 and ready.json()["ready"] is False, ready.text
    assert any(words in record.getMessage() for record in caplog.records), words


async def test_a_pushed_example_that_does_not_fit_is_a_400(app_client: Callable[..., Any], tmp_path: Path,
                                                           sqlite_url: str) -> None:
    model_dir = _with_example(versioned_model(tmp_path, 1), "[1, 2, 3, 4]")
    (tmp_path / "repo").mkdir()
    async with app_client(tmp_path / "repo", database_url=sqlite_url) as client:
        response = await push(client, "sum", model_dir)
    assert response.status_code == 400 and "example: 4 values" in response.json()["error"], response.text


async def test_an_example_row_reaches_the_playground_and_the_openapi_example(
    app_client: Callable[..., Any], tmp_path: Path
) -> None:
    _with_example(sum_model(tmp_path / "repo"), "[1.5, 2, 3.25]")
    async with app_client(tmp_path / "repo") as client:
        page = (await client.get("/ui/models/sum")).text
        assert '"example": [1.5, 2, 3.25]' in page and 'id="fill-example"' in page
        operation = (await client.get("/openapi.json")).json()["paths"]["/v2/models/sum/infer"]["post"]
        example = operation["requestBody"]["content"]["application/json"]["example"]
        assert example["inputs"][0] == {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [[1.5, 2, 3.25]]}
        answer = await client.post("/v2/models/sum/infer", json=example)
        assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [pytest.approx(7.25)]
