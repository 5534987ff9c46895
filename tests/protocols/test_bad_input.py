"""Bad input never gets a 5xx: every case gets a 4xx with ``{"error", "code", "field"}`` JSON whose message
names the field and what was expected, and the server answers the next valid request correctly.

Runs the real app over the real example models (breast-cancer: ``features`` FP64 [-1, 30]; digits: ``X``
FP32 [-1, 64]) with real rows from scikit-learn's datasets. Regression tests for the bugs it found are at the end.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

pytestmark = pytest.mark.anyio

_BC = load_breast_cancer()
ROWS = [_BC.data[0].tolist(), _BC.data[19].tolist()]  # a malignant (0) and a benign (1) tumour
ROW = ROWS[0]
TARGETS = [int(_BC.target[0]), int(_BC.target[19])]
DIGIT = load_digits().data[0].tolist()

V2 = "/v2/models/breast-cancer/infer"
V2_VERSION = "/v2/models/breast-cancer/versions/1/infer"
V1 = "/v1/models/breast-cancer:predict"
V1_VERSION = "/v1/models/breast-cancer/versions/1:predict"
DROP = object()
"""Marks a key to delete in ``tensor()`` / ``v2()``."""


def _apply(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        if value is DROP:
            del base[key]
        else:
            base[key] = value
    return base


def tensor(**changes: Any) -> dict[str, Any]:
    """One valid breast-cancer input tensor (row 0), with ``changes`` applied."""
    return _apply({"name": "features", "shape": [1, 30], "datatype": "FP64", "data": list(ROW)}, changes)


def v2(*inputs: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A V2 request body with ``inputs`` (default: one valid tensor) and top-level ``top`` applied."""
    return _apply({"inputs": list(inputs) if inputs else [tensor()]}, top)


def check_error(resp: httpx.Response, status: int, code: str, field: str | None, *words: str) -> None:
    """A JSON error body with this status and code, ``field`` (None: null), and ``words`` in ``error``."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) <= {"error", "code", "field"}, body
    assert isinstance(body["error"], str) and body["error"], body
    assert body["code"] == code, body
    assert body["field"] == field, body
    for word in words:
        assert word in body["error"], f"{word!r} not in {body['error']!r}"


async def assert_serves(client: httpx.AsyncClient) -> None:
    """The server still answers a valid V2 request on two real rows with the right predictions.

    The data is flat (row-major), so the body is only 4 levels deep and passes any depth limit >= 4.
    """
    body = v2(tensor(shape=[2, 30], data=ROWS[0] + ROWS[1]), id="after-bad-input")
    resp = await client.post(V2, json=body)
    assert resp.status_code == 200, resp.text
    out = {o["name"]: o for o in resp.json()["outputs"]}
    assert resp.json()["id"] == "after-bad-input"
    assert out["predict"]["data"] == TARGETS
    proba = np.asarray(out["predict_proba"]["data"]).reshape(out["predict_proba"]["shape"])
    assert proba.shape == (2, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba.argmax(axis=1).tolist() == TARGETS


# -- the body is not a JSON object -----------------------------------------------------------------------

_VALID = json.dumps(v2()).encode()

BODY_CASES = [
    pytest.param(_VALID[:-5], "malformed_json", None, ["not valid JSON"], id="truncated"),
    pytest.param(_VALID + b" xyz", "malformed_json", None, ["not valid JSON", "Extra data"], id="trailing-garbage"),
    pytest.param(_VALID + _VALID, "malformed_json", None, ["not valid JSON"], id="two-objects"),
    pytest.param(b"{'inputs': []}", "malformed_json", None, ["not valid JSON"], id="single-quotes"),
    pytest.param(b"", "malformed_json", "body", ["empty", "JSON object"], id="empty"),
    pytest.param(b" \n\t ", "malformed_json", "body", ["empty"], id="whitespace-only"),
    pytest.param(b'{"id": "caf\xe9", "inputs": []}', "malformed_json", None, ["UTF-8"], id="latin-1"),
    pytest.param(b'{"inputs": "\xff\xfe\xfd"}', "malformed_json", None, ["UTF-8"], id="invalid-bytes"),
    pytest.param(b"[1, 2, 3]", "invalid_input", "body", ["body", "JSON object"], id="list"),
    pytest.param(b"42", "invalid_input", "body", ["body", "JSON object"], id="number"),
    pytest.param(b'"inputs"', "invalid_input", "body", ["body", "JSON object"], id="string"),
    pytest.param(b"null", "invalid_input", "body", ["body", "JSON object"], id="null"),
]


@pytest.mark.parametrize("url", [V2, V2_VERSION, V1, V1_VERSION])
@pytest.mark.parametrize(("content", "code", "field", "words"), BODY_CASES)
async def test_body_not_a_json_object(client: httpx.AsyncClient, url: str, content: bytes, code: str,
                                      field: str | None, words: list[str]) -> None:
    resp = await client.post(url, content=content, headers={"content-type": "application/json"})
    check_error(resp, 400, code, field, *words)
    await assert_serves(client)


# -- V2: envelope, datatype, data, shape, names ----------------------------------------------------------

_STRINGS = [str(x) for x in ROW]
V2_CASES = [
    # datatype
    pytest.param(v2(tensor(datatype="FP32")), "inputs[0].datatype", ["'features' is FP64", "'FP32'"], id="dt-fp32"),
    pytest.param(v2(tensor(datatype="FLOAT")), "inputs[0].datatype", ["FP64", "'FLOAT'", "V2 datatypes"],
                 id="dt-unknown"),
    pytest.param(v2(tensor(datatype=64)), "inputs[0].datatype", ["inputs[0].datatype", "valid string"],
                 id="dt-not-string"),
    # values of the wrong JSON type
    pytest.param(v2(tensor(data=["a", *ROW[1:]])), "inputs[0].data", ["FP64", "numbers", "strings"], id="str"),
    pytest.param(v2(tensor(data=_STRINGS)), "inputs[0].data", ["numbers", "strings"], id="numeric-strs"),
    pytest.param(v2(tensor(data="17.99")), "inputs[0].data", ["numbers", "strings"], id="scalar-str"),
    pytest.param(v2(tensor(data=[None, *ROW[1:]])), "inputs[0].data", ["numbers", "null"], id="null"),
    pytest.param(v2(tensor(data=[True] * 30)), "inputs[0].data", ["numbers", "booleans"], id="all-bools"),
    pytest.param(v2(tensor(data=[{"v": x} for x in ROW])), "inputs[0].data", ["numbers"], id="objects"),
    pytest.param(v2(tensor(shape=[2, 30], data=[ROW, ROW[:29]])), "inputs[0].data", ["ragged"], id="ragged"),
    pytest.param(v2(tensor(data=[ROW[:15], [ROW[15:]]])), "inputs[0].data", ["ragged"], id="ragged-depth"),
    # shape
    pytest.param(v2(tensor(shape=[30])), "inputs[features].shape", ["'features'", "[30]", "[-1, 30]"], id="rank-1"),
    pytest.param(v2(tensor(shape=[1, 1, 30])), "inputs[features].shape", ["[1, 1, 30]", "[-1, 30]"], id="rank-3"),
    pytest.param(v2(tensor(shape=[1, 29], data=ROW[:29])), "inputs[features].shape", ["[1, 29]", "[-1, 30]"],
                 id="shape-1x29"),
    pytest.param(v2(tensor(shape=[-1, 30])), "inputs[0].shape", ["inputs[0].shape", ">= 0"], id="neg-dim"),
    pytest.param(v2(tensor(shape=[-1, -30])), "inputs[0].shape", [">= 0", "[-1, -30]"], id="neg-dims-product-ok"),
    pytest.param(v2(tensor(shape=[0, 30], data=[])), "inputs", ["empty", ">= 1"], id="empty-batch"),
    pytest.param(v2(tensor(data=ROW[:29])), "inputs[0].data", ["29 values", "[1, 30]", "needs 30"], id="too-few"),
    pytest.param(v2(tensor(data=[*ROW, 1.0])), "inputs[0].data", ["31 values", "needs 30"], id="too-many"),
    pytest.param(v2(tensor(data=ROWS)), "inputs[0].data", ["60 values", "needs 30"], id="two-rows-shape-one"),
    pytest.param(v2(tensor(shape="1,30")), "inputs[0].shape", ["inputs[0].shape", "valid list"], id="shape-str"),
    pytest.param(v2(tensor(shape=30)), "inputs[0].shape", ["valid list"], id="shape-int"),
    pytest.param(v2(tensor(shape=[1.5, 30])), "inputs[0].shape[0]", ["valid integer"], id="shape-float"),
    pytest.param(v2(tensor(shape=[1, "x"])), "inputs[0].shape[1]", ["valid integer"], id="shape-str-dim"),
    # names and fields
    pytest.param(v2(tensor(name="X")), "inputs[0].name", ["unknown input 'X'", "'features'"], id="other-name"),
    pytest.param(v2(tensor(name="")), "inputs[0].name", ["inputs[0].name", "at least 1"], id="empty-name"),
    pytest.param(v2(inputs=[]), "inputs", ["inputs", "at least 1 item"], id="inputs-empty"),
    pytest.param(v2(inputs=DROP, id="x"), "inputs", ["inputs", "required field is missing"], id="inputs-missing"),
    pytest.param(v2(inputs=tensor()), "inputs", ["inputs", "valid list"], id="inputs-object"),
    pytest.param(v2(tensor(), tensor()), "inputs[1].name", ["'features'", "given twice"], id="input-twice"),
    pytest.param(v2(tensor(name=DROP)), "inputs[0].name", ["required field is missing"], id="name-missing"),
    pytest.param(v2(tensor(data=DROP)), "inputs[0].data", ["required field is missing"], id="data-missing"),
    pytest.param(v2(tensor(shape=DROP)), "inputs[0].shape", ["required field is missing"], id="shape-missing"),
    pytest.param(v2(tensor(datatype=DROP)), "inputs[0].datatype", ["required field"], id="datatype-missing"),
    pytest.param(v2(tensor(dtype="FP64")), "inputs[0].dtype", ["inputs[0].dtype", "unknown field"], id="tensor-extra"),
    pytest.param(v2(input=[tensor()]), "input", ["input: unknown field"], id="top-level-extra"),
    pytest.param(v2(id=5), "id", ["id", "valid string"], id="id-not-string"),
    pytest.param(v2(parameters=[1]), "parameters", ["parameters", "valid dictionary"], id="parameters-list"),
    pytest.param(v2(outputs="predict"), "outputs", ["outputs", "valid list"], id="outputs-not-list"),
    pytest.param(v2(outputs=[{"name": "proba"}]), "outputs[0].name", ["unknown output 'proba'", "'predict_proba'"],
                 id="unknown-output"),
    pytest.param(v2(outputs=[{"name": "predict"}, {"name": "label"}]), "outputs[1].name",
                 ["unknown output 'label'", "'predict'"], id="second-output-unknown"),
]


@pytest.mark.parametrize("url", [V2, V2_VERSION])
@pytest.mark.parametrize(("body", "field", "words"), V2_CASES)
async def test_v2_invalid_input(client: httpx.AsyncClient, url: str, body: dict[str, Any], field: str,
                                words: list[str]) -> None:
    resp = await client.post(url, json=body)
    check_error(resp, 400, "invalid_input", field, *words)
    await assert_serves(client)


@pytest.mark.parametrize("k", [0, -1, "x", 1.5, True, [2]], ids=["zero", "negative", "string", "float", "bool", "list"])
async def test_classification_parameter_invalid(client: httpx.AsyncClient, k: Any) -> None:
    resp = await client.post(V2, json=v2(outputs=[{"name": "predict_proba", "parameters": {"classification": k}}]))
    check_error(resp, 400, "invalid_input", "outputs[0].parameters.classification", "positive integer", repr(k))
    await assert_serves(client)


async def test_classification_of_a_1d_output(client: httpx.AsyncClient) -> None:
    resp = await client.post(V2, json=v2(outputs=[{"name": "predict", "parameters": {"classification": 1}}]))
    check_error(resp, 400, "unsupported_feature", "outputs[0].parameters.classification", "[batch, classes]")
    await assert_serves(client)


async def test_binary_tensor_extension_is_refused_on_v1(client: httpx.AsyncClient) -> None:
    resp = await client.post(V1, json={"instances": ROWS}, headers={"inference-header-content-length": "0"})
    check_error(resp, 400, "unsupported_feature", "headers.inference-header-content-length", "binary", "JSON")
    await assert_serves(client)


# -- NaN and Infinity ------------------------------------------------------------------------------------

_MARK = 123456.789  # replaced in the JSON text by a non-finite token


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
@pytest.mark.parametrize("url", [V2, V2_VERSION, V1])
async def test_nonfinite_values(client: httpx.AsyncClient, url: str, token: str) -> None:
    data = [*ROW[:5], _MARK, *ROW[6:]]
    body = {"instances": [data]} if url == V1 else v2(tensor(data=data))
    content = json.dumps(body).replace(str(_MARK), token)
    assert token in content
    resp = await client.post(url, content=content)
    check_error(resp, 400, "invalid_input", "inputs[features].data", "'features'", "NaN or Infinity", "index 5")
    await assert_serves(client)


async def test_python_json_nan_in_fp64(client: httpx.AsyncClient) -> None:
    content = json.dumps(v2(tensor(data=[float("nan"), *ROW[1:]])))  # Python writes the bare token NaN
    assert "NaN" in content
    resp = await client.post(V2, content=content)
    check_error(resp, 400, "invalid_input", "inputs[features].data", "'features'", "NaN or Infinity")
    await assert_serves(client)


async def test_fp32_overflow_is_out_of_range(client: httpx.AsyncClient) -> None:
    body = v2({"name": "X", "shape": [1, 64], "datatype": "FP32", "data": [1e39, *DIGIT[1:]]})
    resp = await client.post("/v2/models/digits/infer", json=body)
    check_error(resp, 400, "invalid_input", "inputs[0].data", "outside the range of FP32")
    await assert_serves(client)


# -- JSON nesting depth ----------------------------------------------------------------------------------

def _nested(levels: int) -> str:
    """A V2 body whose ``data`` is ``levels`` nested lists around one row."""
    row = json.dumps(ROW)
    return json.dumps(v2()).replace(row, "[" * (levels - 1) + row + "]" * (levels - 1))


@pytest.mark.parametrize(("content", "depth"), [
    pytest.param(_nested(100), 103, id="data-100-lists"),
    pytest.param("[" * 100_000, 100_000, id="100k-open-brackets"),
    pytest.param("[" * 100_000 + "]" * 100_000, 100_000, id="100k-balanced"),
    pytest.param('{"a":' * 100_000 + "1" + "}" * 100_000, 100_000, id="100k-objects"),
])
@pytest.mark.parametrize("url", [V2, V1])
async def test_json_too_deep(client: httpx.AsyncClient, url: str, content: str, depth: int) -> None:
    resp = await client.post(url, content=content)
    check_error(resp, 400, "json_too_deep", None, f"nested {depth} levels", "limit is 32", "max_json_depth")
    await assert_serves(client)


async def test_configured_depth_limit(app_client: Any, examples_repo: Path) -> None:
    async with app_client(examples_repo, max_json_depth=4) as c:
        await assert_serves(c)  # flat data: exactly 4 levels deep
        resp = await c.post(V2, json=v2(tensor(data=[ROW])))  # nested rows: 5 levels
        check_error(resp, 400, "json_too_deep", None, "nested 5 levels", "limit is 4", "max_json_depth")
        resp = await c.post(V1, json={"instances": [[[ROW]]]})
        check_error(resp, 400, "json_too_deep", None, "nested 5 levels", "limit is 4")
        await assert_serves(c)


@pytest.mark.parametrize("text", [
    pytest.param("[" * 40, id="brackets"),
    pytest.param("{[" * 20, id="braces"),
    pytest.param('"' + "[" * 40, id="escaped-quote"),
    pytest.param('\\"[[[[[[' + "\\\\" + "[" * 20, id="escaped-backslash-and-quote"),
    pytest.param("trailing backslash \\", id="trailing-backslash"),
])
async def test_brackets_inside_strings_do_not_count(app_client: Any, examples_repo: Path, text: str) -> None:
    body = v2(id=text, parameters={"note": "]" * 10 + "[" * 40})
    async with app_client(examples_repo, max_json_depth=4) as c:
        resp = await c.post(V2, json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json()["id"] == text
        assert resp.json()["outputs"][0]["data"] == [TARGETS[0]]
        await assert_serves(c)


# -- body size -------------------------------------------------------------------------------------------

async def _chunks(data: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def test_body_over_the_limit(app_client: Any, examples_repo: Path) -> None:
    small = json.dumps(v2()).encode()
    big = json.dumps(v2(tensor(shape=[6, 30], data=_BC.data[:6].tolist()))).encode()
    big_v1 = json.dumps({"instances": _BC.data[:6].tolist()}).encode()
    assert len(small) < 1000 < len(big) and len(big_v1) > 1000
    async with app_client(examples_repo, max_body_bytes=1000) as c:
        assert (await c.post(V2, content=small)).status_code == 200
        assert (await c.post(V2, content=_chunks(small))).status_code == 200
        for url, body in [(V2, big), (V2_VERSION, big), (V1, big_v1)]:
            resp = await c.post(url, content=body)  # with Content-Length
            assert resp.request.headers["content-length"] == str(len(body))
            check_error(resp, 413, "payload_too_large", None, "1000 bytes", "max_body_bytes")
            await assert_serves(c)
            resp = await c.post(url, content=_chunks(body))  # chunked, no Content-Length
            assert "content-length" not in resp.request.headers
            check_error(resp, 413, "payload_too_large", None, "1000 bytes", "max_body_bytes")
            await assert_serves(c)


@pytest.mark.parametrize("value", ["abc", "-5", "1e3"])
async def test_content_length_not_a_number(client: httpx.AsyncClient, value: str) -> None:
    resp = await client.post(V2, content=_VALID, headers={"content-length": value})
    check_error(resp, 400, "bad_request", "headers.content-length", "Content-Length", "number")
    await assert_serves(client)


# -- models, versions and routes -------------------------------------------------------------------------

ROUTE_CASES = [
    pytest.param("POST", "/v2/models/nope/infer", 404, "model_not_found", "model_name", ["'nope'"], id="v2-model"),
    pytest.param("POST", "/v2/models/nope/versions/1/infer", 404, "model_not_found", "model_name", ["'nope'"],
                 id="v2-model-version"),
    pytest.param("POST", "/v2/models/breast-cancer/versions/9/infer", 404, "model_version_not_found",
                 "model_version", ["'breast-cancer'", "'9'", "available: '1'"], id="v2-version"),
    pytest.param("POST", "/v1/models/nope:predict", 404, "model_not_found", "model_name", ["'nope'"], id="v1-model"),
    pytest.param("POST", "/v1/models/breast-cancer/versions/9:predict", 404, "model_version_not_found",
                 "model_version", ["'9'", "available: '1'"], id="v1-version"),
    pytest.param("POST", "/v1/models/breast-cancer", 404, "not_found", None, [":predict"], id="v1-no-verb"),
    pytest.param("POST", "/v1/models/breast-cancer:classify", 404, "not_found", None, [":predict"], id="v1-verb"),
    pytest.param("POST", "/v1/models/breast-cancer/versions/1", 404, "not_found", None, [":predict"],
                 id="v1-version-no-verb"),
    pytest.param("GET", "/v2/nothing", 404, "not_found", None, ["/v2/nothing"], id="unknown-route"),
    pytest.param("POST", "/v3/models/breast-cancer/infer", 404, "not_found", None, ["/v3/"], id="unknown-prefix"),
    pytest.param("GET", V2, 405, "method_not_allowed", None, ["GET", V2], id="get-infer"),
    pytest.param("GET", V2_VERSION, 405, "method_not_allowed", None, ["GET"], id="get-version-infer"),
    pytest.param("PUT", V1, 405, "method_not_allowed", None, ["PUT"], id="put-predict"),
    pytest.param("DELETE", "/v2/models/breast-cancer", 405, "method_not_allowed", None, ["DELETE"], id="delete"),
]


@pytest.mark.parametrize(("method", "url", "status", "code", "field", "words"), ROUTE_CASES)
async def test_unknown_model_version_or_route(client: httpx.AsyncClient, method: str, url: str, status: int,
                                              code: str, field: str | None, words: list[str]) -> None:
    body = {"instances": [ROW]} if url.startswith("/v1") else v2()
    content = None if method in ("GET", "DELETE") else json.dumps(body)
    resp = await client.request(method, url, content=content)
    check_error(resp, status, code, field, *words)
    await assert_serves(client)


# -- V1 / TF-Serving predict -----------------------------------------------------------------------------

V1_CASES = [
    pytest.param({}, "body", ["'instances'", "'inputs'"], id="neither"),
    pytest.param({"signature_name": "serving_default"}, "body", ["exactly one"], id="only-signature"),
    pytest.param({"instances": [ROW], "inputs": [ROW]}, "body", ["exactly one", "'instances'", "'inputs'"],
                 id="both"),
    pytest.param({"instances": {"features": ROW}}, "instances", ["instances", "non-empty list"], id="inst-object"),
    pytest.param({"instances": 5}, "instances", ["non-empty list"], id="inst-number"),
    pytest.param({"instances": None}, "instances", ["non-empty list"], id="inst-null"),
    pytest.param({"instances": []}, "instances", ["non-empty list"], id="inst-empty"),
    pytest.param({"instances": [ROW[:29]]}, "inputs[features].shape", ["[1, 29]", "[-1, 30]"], id="row-29"),
    pytest.param({"instances": [[*ROW, 1.0]]}, "inputs[features].shape", ["[1, 31]", "[-1, 30]"], id="row-31"),
    pytest.param({"instances": [[]]}, "inputs[features].shape", ["[1, 0]", "[-1, 30]"], id="row-empty"),
    pytest.param({"instances": ROW}, "inputs[features].shape", ["[30]", "[-1, 30]"], id="row-not-nested"),
    pytest.param({"instances": [ROW, ROW[:29]]}, "instances", ["instances", "ragged"], id="rows-ragged"),
    pytest.param({"instances": [_STRINGS]}, "instances", ["instances", "numbers", "strings"], id="row-strings"),
    pytest.param({"instances": [[None, *ROW[1:]]]}, "instances", ["numbers", "null"], id="row-null"),
    pytest.param({"instances": [{"features": ROW}, ROW]}, "instances", ["instances", "rectangular"], id="mixed-rows"),
    pytest.param({"instances": [{"feature": ROW}]}, "instances[0].feature", ["unknown input 'feature'", "features"],
                 id="row-unknown-input"),
    pytest.param({"instances": [{}]}, "instances[0].features", ["missing input 'features'"], id="row-no-input"),
    pytest.param({"instances": [ROW], "instance": [ROW]}, "instance", ["instance: unknown field", "'instances'"],
                 id="unknown-field"),
    pytest.param({"inputs": {"x": [ROW]}}, "inputs.x", ["unknown input 'x'", "features"], id="inputs-unknown"),
    pytest.param({"inputs": {}}, "inputs", ["missing input 'features'"], id="inputs-empty-object"),
    pytest.param({"inputs": None}, "inputs", ["numbers", "null"], id="inputs-null"),
    pytest.param({"inputs": "x"}, "inputs", ["numbers", "strings"], id="inputs-string"),
    pytest.param({"inputs": {"features": [_STRINGS]}}, "inputs", ["numbers", "strings"], id="inputs-strings"),
]


@pytest.mark.parametrize("url", [V1, V1_VERSION])
@pytest.mark.parametrize(("body", "field", "words"), V1_CASES)
async def test_v1_invalid_input(client: httpx.AsyncClient, url: str, body: dict[str, Any], field: str,
                                words: list[str]) -> None:
    resp = await client.post(url, json=body)
    check_error(resp, 400, "invalid_input", field, *words)
    ok = await client.post(url, json={"instances": ROWS})
    assert ok.status_code == 200 and [p["predict"] for p in ok.json()["predictions"]] == TARGETS
    await assert_serves(client)


# -- regressions: bugs this suite found in src/, fixed -----------------------------------------------

@pytest.mark.parametrize("url", [V2, V1])
async def test_regression_boolean_among_numbers(client: httpx.AsyncClient, url: str) -> None:
    data = [True, *ROW[1:]]
    resp = await client.post(url, json={"instances": [data]} if url == V1 else v2(tensor(data=data)))
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "invalid_input" and "boolean" in resp.json()["error"]
    await assert_serves(client)


async def test_regression_zero_size_shape_too_big(client: httpx.AsyncClient) -> None:
    resp = await client.post(V2, json=v2(tensor(shape=[0, 2**40, 2**40], data=[])))
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == "inputs[0].shape"
    await assert_serves(client)


def _surrogate(body: dict[str, Any]) -> str:
    """``body`` as JSON text with the string SURROGATE replaced by the escape of a lone surrogate, \\ud800."""
    return json.dumps(body).replace("SURROGATE", "\\ud800")


_SURROGATE_CASES = [
    pytest.param(V2, _surrogate(v2(id="SURROGATE")), id="v2-id-echoed"),
    pytest.param(V1, _surrogate({"instances": [{"SURROGATE": ROW}]}), id="v1-row-input-name"),
    pytest.param(V1, _surrogate({"inputs": {"SURROGATE": [ROW]}}), id="v1-inputs-name"),
    pytest.param(V1, _surrogate({"SURROGATE": 1, "instances": [ROW]}), id="v1-unknown-field"),
]


@pytest.mark.parametrize(("url", "content"), _SURROGATE_CASES)
async def test_regression_lone_surrogate_escape(client: httpx.AsyncClient, url: str, content: str) -> None:
    assert "\\ud800" in content
    resp = await client.post(url, content=content)
    check_error(resp, 400, "malformed_json", None)  # a lone surrogate is not UTF-8: refused by the JSON decoder
    await assert_serves(client)


async def test_regression_depth_limit_bypassed_by_utf16(client: httpx.AsyncClient) -> None:
    content = _nested(100).replace('"inputs"', '"id": "\u225b", "inputs"', 1)
    resp = await client.post(V2, content=content.encode("utf-16-le"))
    check_error(resp, 400, "malformed_json", None, "not valid JSON")  # UTF-16 is refused before any depth count
    await assert_serves(client)


async def test_regression_405_without_allow_header(client: httpx.AsyncClient) -> None:
    resp = await client.get(V2)
    check_error(resp, 405, "method_not_allowed", None, "GET")
    assert resp.headers.get("allow") == "POST"


async def test_regression_v1_other_verb_suggests_wrong_path(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/models/breast-cancer:classify", json={"instances": [ROW]})
    check_error(resp, 404, "not_found", None, ":predict")
    assert "classify:predict" not in resp.json()["error"]


_HUGE_INT = "9" * 5000  # beyond Python's default limit of 4300 digits for int <-> str


@pytest.mark.parametrize("url", [V2, V1])
async def test_regression_integer_beyond_the_digit_limit(client: httpx.AsyncClient, url: str) -> None:
    body = json.dumps(v2() if url == V2 else {"instances": [ROW]}).replace(str(ROW[1]), _HUGE_INT, 1)
    assert _HUGE_INT in body
    resp = await client.post(url, content=body, headers={"content-type": "application/json"})
    check_error(resp, 400, "malformed_json", None, "4300 digits")
    await assert_serves(client)


async def test_regression_integer_beyond_the_digit_limit_on_registry_routes(client: httpx.AsyncClient) -> None:
    resp = await client.patch("/api/v1/models/breast-cancer", content='{"description": "x", "n": ' + _HUGE_INT + "}",
                              headers={"content-type": "application/json"})
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.json()["code"], resp.text
