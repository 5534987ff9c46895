"""The real `mlgate serve` process on a free port, queried with the official Triton client and raw sockets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from sklearn.datasets import load_breast_cancer, load_digits

from tests.processes import serve_process


@pytest.fixture(scope="module")
def server(examples_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve_process(examples_repo, log_path, {"MLGATE_MAX_BODY_BYTES": str(1024 * 1024)}) as url:
        yield url


def test_tritonclient_breast_cancer_equals_scikit_learn(server: str, examples_repo: Path) -> None:
    rows = load_breast_cancer().data[:20]
    model = joblib.load(examples_repo / "breast-cancer" / "model.joblib")
    client = triton.InferenceServerClient(url=server)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("breast-cancer")
        meta = client.get_model_metadata("breast-cancer")
        assert meta["inputs"][0] == {"name": "features", "datatype": "FP64", "shape": [-1, 30]}
        features = triton.InferInput("features", list(rows.shape), "FP64")
        features.set_data_from_numpy(rows, binary_data=False)
        result = client.infer(
            "breast-cancer", [features], request_id="triton-1",
            outputs=[triton.InferRequestedOutput("predict", binary_data=False),
                     triton.InferRequestedOutput("predict_proba", binary_data=False)])
        np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(rows))
        np.testing.assert_array_equal(result.as_numpy("predict_proba"), model.predict_proba(rows))
        assert result.get_response()["id"] == "triton-1"
    finally:
        client.close()


def test_tritonclient_digits_equals_onnxruntime(server: str, examples_repo: Path) -> None:
    rows = load_digits().data[:20].astype(np.float32)
    session = ort.InferenceSession(str(examples_repo / "digits" / "model.onnx"), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {"X": rows})
    client = triton.InferenceServerClient(url=server)
    try:
        x = triton.InferInput("X", list(rows.shape), "FP32")
        x.set_data_from_numpy(rows, binary_data=False)
        result = client.infer("digits", [x], model_version="1")
        np.testing.assert_array_equal(result.as_numpy("label"), labels)
        np.testing.assert_array_equal(result.as_numpy("probabilities"), probabilities)
    finally:
        client.close()


def test_v1_over_the_wire_gives_the_same_answers(server: str, examples_repo: Path) -> None:
    rows = load_breast_cancer().data[:20]
    model = joblib.load(examples_repo / "breast-cancer" / "model.joblib")
    response = httpx.post(f"http://{server}/v1/models/breast-cancer:predict", json={"instances": rows.tolist()})
    assert response.status_code == 200
    assert [p["predict"] for p in response.json()["predictions"]] == model.predict(rows).tolist()


def _raw_request(server: str, head: bytes, body: bytes = b"", timeout: float = 5.0) -> bytes:
    host, port = server.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head + body)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"}" in chunk:
                    break
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_oversized_body_is_refused_before_it_is_sent(server: str) -> None:
    """A declared 1 GiB body is answered 413 at once, though only 100 bytes of it were ever sent."""
    head = (b"POST /v2/models/breast-cancer/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1073741824\r\n\r\n")
    started = time.monotonic()
    reply = _raw_request(server, head, b'{"inputs": [' + b" " * 88)
    assert time.monotonic() - started < 4
    status_line, _, rest = reply.partition(b"\r\n")
    assert b" 413 " in status_line, reply[:300]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["code"] == "payload_too_large" and "1048576" in body["error"]
    # The server still answers.
    assert httpx.get(f"http://{server}/v2/health/live").json() == {"live": True}


def test_chunked_body_over_the_limit_is_refused(server: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    response = httpx.post(f"http://{server}/v2/models/breast-cancer/infer", content=chunks())
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_request_id_header_over_the_wire(server: str) -> None:
    response = httpx.get(f"http://{server}/v2/models/breast-cancer", headers={"X-Request-ID": "wire-1"})
    assert response.headers["x-request-id"] == "wire-1"
