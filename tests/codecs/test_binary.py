"""The V2 binary tensor data extension: the real Triton client against a real `mlgate serve`, malformed
bodies over the wire, and the codec's decoding straight into numpy."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.http as triton
from sklearn.datasets import load_breast_cancer

from mlgate.codecs.binary import decode_tensor, encode_tensor
from mlgate.codecs.v2 import decode_inputs, parse_request
from mlgate.errors import InvalidInput
from mlgate.model.manifest import TensorSpec
from tests.fakes import write_python_model
from tests.processes import serve_process

MIXED_MODEL = '''
import numpy as np

class Model:
    def predict(self, batch):
        return {"x2": batch["x"] * 2, "d_sum": batch["d"].sum(axis=1), "n_neg": -batch["n"],
                "text_rev": np.array([t[::-1] for t in batch["text"]], dtype=object)}
'''

MIXED_INPUTS = """
[[inputs]]
name = "x"
datatype = "FP32"
shape = [-1, 3]

[[inputs]]
name = "d"
datatype = "FP64"
shape = [-1, 2]

[[inputs]]
name = "n"
datatype = "INT64"
shape = [-1]

[[inputs]]
name = "text"
datatype = "BYTES"
shape = [-1]
"""

MIXED_OUTPUTS = """
[[outputs]]
name = "x2"
datatype = "FP32"
shape = [-1, 3]

[[outputs]]
name = "d_sum"
datatype = "FP64"
shape = [-1]

[[outputs]]
name = "n_neg"
datatype = "INT64"
shape = [-1]

[[outputs]]
name = "text_rev"
datatype = "BYTES"
shape = [-1]
"""


@pytest.fixture(scope="module")
def server(examples_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    repo = tmp_path_factory.mktemp("binary-repo")
    shutil.copytree(examples_repo / "breast-cancer", repo / "breast-cancer")
    write_python_model(repo, "mixed", MIXED_MODEL, MIXED_INPUTS, MIXED_OUTPUTS)
    with serve_process(repo, tmp_path_factory.mktemp("serve-binary") / "serve.log") as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(url=server)
    yield c
    c.close()


def _inputs(binary: bool | list[bool]) -> tuple[list[triton.InferInput], dict[str, np.ndarray]]:
    data = {
        "x": np.array([[1.5, -2.0, 3.25], [0.0, 1e-7, -1e30]], dtype=np.float32),
        "d": np.array([[0.1, 0.2], [1e300, -1e300]], dtype=np.float64),
        "n": np.array([2**62, -7], dtype=np.int64),
        "text": np.array(["héllo wörld".encode(), b""], dtype=object),
    }
    flags = binary if isinstance(binary, list) else [binary] * 4
    tensors = []
    for (name, array), flag in zip(data.items(), flags, strict=True):
        datatype = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "object": "BYTES"}[array.dtype.name]
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=flag)
        tensors.append(tensor)
    return tensors, data


def _check_mixed(result: Any, data: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(result.as_numpy("x2"), data["x"] * 2)
    assert result.as_numpy("x2").dtype == np.float32
    np.testing.assert_array_equal(result.as_numpy("d_sum"), data["d"].sum(axis=1))
    np.testing.assert_array_equal(result.as_numpy("n_neg"), -data["n"])
    assert result.as_numpy("text_rev").tolist() == [t[::-1] for t in data["text"]]


def test_binary_inputs_and_outputs_for_fp32_fp64_int64_bytes(client: triton.InferenceServerClient) -> None:
    tensors, data = _inputs(True)
    outputs = [triton.InferRequestedOutput(n, binary_data=True) for n in ("x2", "d_sum", "n_neg", "text_rev")]
    result = client.infer("mixed", tensors, outputs=outputs)
    assert all("data" not in o and o["parameters"]["binary_data_size"] > 0 for o in result.get_response()["outputs"])
    _check_mixed(result, data)


def test_binary_data_output_for_every_output_when_none_is_named(client: triton.InferenceServerClient) -> None:
    tensors, data = _inputs(True)
    result = client.infer("mixed", tensors)  # tritonclient sends parameters.binary_data_output = true
    assert [o["parameters"]["binary_data_size"] for o in result.get_response()["outputs"]] == [24, 16, 16, 21]
    _check_mixed(result, data)


def test_binary_and_json_tensors_mixed_in_one_request(client: triton.InferenceServerClient) -> None:
    tensors, data = _inputs([True, False, True, False])
    outputs = [triton.InferRequestedOutput("x2", binary_data=False), triton.InferRequestedOutput("d_sum"),
               triton.InferRequestedOutput("n_neg", binary_data=False), triton.InferRequestedOutput("text_rev")]
    result = client.infer("mixed", tensors, outputs=outputs)
    by_name = {o["name"]: o for o in result.get_response()["outputs"]}
    assert "data" in by_name["x2"] and "binary_data_size" in by_name["d_sum"]["parameters"]
    _check_mixed(result, data)


def test_breast_cancer_in_binary_equals_scikit_learn(client: triton.InferenceServerClient, examples_repo: Path) -> None:
    rows = load_breast_cancer().data[:50]
    model = joblib.load(examples_repo / "breast-cancer" / "model.joblib")
    features = triton.InferInput("features", list(rows.shape), "FP64")
    features.set_data_from_numpy(rows, binary_data=True)
    result = client.infer("breast-cancer", [features], outputs=[
        triton.InferRequestedOutput("predict", binary_data=True),
        triton.InferRequestedOutput("predict_proba", binary_data=True)])
    np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(rows))
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), model.predict_proba(rows))


def test_binary_response_on_the_wire(server: str) -> None:
    """The raw response: the header gives the JSON's length; the tensor bytes follow it, little-endian."""
    x = np.array([[1, 2, 3]], dtype=np.float32)
    body = _body([("x", x)], [("d", np.array([[1.0, 2.0]])), ("n", np.array([5], dtype=np.int64)),
                                     ("text", np.array([b"ab"], dtype=object))],
                 outputs=[{"name": "x2", "parameters": {"binary_data": True}}, {"name": "text_rev"}])
    response = httpx.post(f"http://{server}/v2/models/mixed/infer", content=body[0],
                          headers={"Inference-Header-Content-Length": str(body[1])})
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    head = json.loads(response.content[:length])
    assert head["outputs"][0] == {"name": "x2", "datatype": "FP32", "shape": [1, 3],
                                  "parameters": {"binary_data_size": 12}}
    assert head["outputs"][1]["data"] == ["ba"]
    assert response.content[length:] == struct.pack("<3f", 2, 4, 6)


def _body(binary: list[tuple[str, np.ndarray]], plain: list[tuple[str, np.ndarray]],
          outputs: list[dict[str, Any]] | None = None, sizes: dict[str, Any] | None = None,
          extra: bytes = b"") -> tuple[bytes, int]:
    """A request body: ``binary`` tensors in the binary section, ``plain`` ones as JSON data."""
    names = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "object": "BYTES"}
    inputs, chunks = [], []
    for name, array in binary:
        raw = encode_tensor(array, names[array.dtype.name])
        size = (sizes or {}).get(name, len(raw))
        inputs.append({"name": name, "shape": list(array.shape), "datatype": names[array.dtype.name],
                       "parameters": {"binary_data_size": size}})
        chunks.append(raw)
    for name, array in plain:
        data = [v.decode() for v in array.ravel()] if array.dtype == object else array.ravel().tolist()
        inputs.append({"name": name, "shape": list(array.shape), "datatype": names[array.dtype.name], "data": data})
    request: dict[str, Any] = {"inputs": inputs}
    if outputs is not None:
        request["outputs"] = outputs
    head = json.dumps(request).encode()
    return head + b"".join(chunks) + extra, len(head)


PLAIN = [("d", np.array([[1.0, 2.0]])), ("n", np.array([5], dtype=np.int64)), ("text", np.array([b"a"], dtype=object))]
X = np.array([[1, 2, 3]], dtype=np.float32)


def _malformed_cases() -> list[tuple[str, bytes, dict[str, str], str, str]]:
    """(id, body, headers, expected field, fragment of the message)."""
    good, n = _body([("x", X)], PLAIN)
    bad_size, m = _body([("x", X)], PLAIN, sizes={"x": 8})
    too_big, k = _body([("x", X)], PLAIN, sizes={"x": 400})
    trailing, t = _body([("x", X)], PLAIN, extra=b"junk")
    text = np.array([b"abc"], dtype=object)
    short_bytes, s = _body([("x", X), ("text", text)], PLAIN[:2], sizes={"text": 5})  # takes 4 + 3 = 7 bytes
    negative, g = _body([("x", X)], PLAIN, sizes={"x": -12})
    flag, f = _body([("x", X)], PLAIN, outputs=[{"name": "x2", "parameters": {"binary_data": "yes"}}])
    both = json.dumps({"inputs": [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3], "parameters": {"binary_data_size": 12}},
        {"name": "d", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]},
        {"name": "n", "shape": [1], "datatype": "INT64", "data": [5]},
        {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}).encode()
    return [
        ("header-larger-than-body", good, {"Inference-Header-Content-Length": str(len(good) + 1)},
         "headers.inference-header-content-length", "holds only"),
        ("header-not-a-number", good, {"Inference-Header-Content-Length": "12abc"},
         "headers.inference-header-content-length", "non-negative integer"),
        ("size-not-shape-times-itemsize", bad_size, {"Inference-Header-Content-Length": str(m)},
         "inputs[0].parameters.binary_data_size", "8 bytes, but shape [1, 3] of FP32 takes 12"),
        ("size-past-the-end", too_big, {"Inference-Header-Content-Length": str(k)},
         "inputs[0].parameters.binary_data_size", "holds only 12"),
        ("bytes-unclaimed", trailing, {"Inference-Header-Content-Length": str(t)}, "body", "add up to 12"),
        ("bytes-element-past-the-end", short_bytes, {"Inference-Header-Content-Length": str(s)},
         "inputs[1].parameters.binary_data_size", "only 1 remain"),
        ("negative-size", negative, {"Inference-Header-Content-Length": str(g)},
         "inputs[0].parameters.binary_data_size", "integer >= 0"),
        ("size-without-header", good[:n], {}, "inputs[0].parameters.binary_data_size", "no binary section"),
        ("data-and-size", both + b"\0" * 12, {"Inference-Header-Content-Length": str(len(both))},
         "inputs[0]", "not both"),
        ("header-cuts-the-json", good, {"Inference-Header-Content-Length": str(n - 5)}, "", "not valid JSON"),
        ("json-part-empty", good, {"Inference-Header-Content-Length": "0"}, "body", "empty"),
        ("shared-memory", both.replace(b'"binary_data_size": 12', b'"shared_memory_region": "r"'), {},
         "inputs[0].parameters", "shared-memory tensors are not supported"),
        ("output-flag-not-boolean", flag, {"Inference-Header-Content-Length": str(f)},
         "outputs[0].parameters.binary_data", "true or false"),
    ]


@pytest.mark.parametrize(("body", "headers", "field", "fragment"),
                         [case[1:] for case in _malformed_cases()], ids=[case[0] for case in _malformed_cases()])
def test_malformed_binary_bodies_are_400(server: str, body: bytes, headers: dict[str, str], field: str,
                                         fragment: str) -> None:
    response = httpx.post(f"http://{server}/v2/models/mixed/infer", content=body, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()
    assert fragment in error["error"]
    assert error.get("field", "") == field or (not field and error["code"] == "malformed_json")


def test_the_header_on_other_routes_is_refused(server: str) -> None:
    response = httpx.post(f"http://{server}/v1/models/breast-cancer:predict", content=b'{"instances": [[1]]}',
                          headers={"Inference-Header-Content-Length": "20"})
    assert response.status_code == 400 and response.json()["code"] == "unsupported_feature"
    assert "V2 inference only" in response.json()["error"]


def test_server_metadata_lists_the_extension(server: str) -> None:
    assert "binary_tensor_data" in httpx.get(f"http://{server}/v2").json()["extensions"]


# -- the codec, without HTTP ---------------------------------------------------------------------------


def test_numeric_tensors_are_views_of_the_body_not_copies() -> None:
    x = np.arange(6, dtype=np.float64).reshape(2, 3)
    head = json.dumps({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64",
                                   "parameters": {"binary_data_size": 48}}]}).encode()
    body = bytearray(x.tobytes())
    arrays = decode_inputs(parse_request(json.loads(head)), [TensorSpec(name="x", datatype="FP64", shape=(-1, 3))],
                           memoryview(body))
    got = arrays["x"]
    np.testing.assert_array_equal(got, x)
    assert np.shares_memory(got, np.frombuffer(body, dtype=np.uint8)) and got.flags.writeable


@pytest.mark.parametrize(("datatype", "array"), [
    ("FP16", np.array([[0.5, -2.0], [65504.0, 1e-4]], dtype=np.float16)),
    ("INT8", np.array([-128, 0, 127], dtype=np.int8)),
    ("UINT32", np.array([0, 4_000_000_000], dtype=np.uint32)),
    ("BOOL", np.array([True, False, True])),
    ("BF16", np.array([1.0, -0.5, 3.140625, 0.0], dtype=np.float32)),  # exactly representable in bfloat16
    ("BYTES", np.array([b"", "é".encode(), b"\x00\xff"], dtype=object)),
])
def test_round_trip_of_every_kind(datatype: str, array: np.ndarray) -> None:
    raw = encode_tensor(array, datatype)
    back = decode_tensor(memoryview(raw), datatype, list(array.shape), "inputs[0]")
    assert back.tolist() == array.tolist()


def test_bf16_rounds_to_nearest_even_and_bool_bytes_must_be_0_or_1() -> None:
    value = np.array([1 + 2**-8, 1 + 3 * 2**-8], dtype=np.float32)  # halfway cases: ties go to even
    assert struct.unpack("<2H", encode_tensor(value, "BF16")) == (0x3F80, 0x3F82)
    with pytest.raises(InvalidInput, match="0 or 1"):
        decode_tensor(memoryview(b"\x00\x02"), "BOOL", [2], "inputs[0]")
