"""tritonclient.grpc (unchanged) against mlgate's gRPC service: real rows, real models, streaming, metadata."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from sklearn.datasets import load_breast_cancer, load_digits

from mlgate.protocols.grpc import grpc_service_pb2 as pb
from tests.fakes import TEXT_MODEL, write_python_model
from tests.protocols.grpc.conftest import auth, grpc_app

pytestmark = pytest.mark.anyio

ROWS = 20
CANCER = load_breast_cancer().data[:ROWS]
DIGITS = load_digits().data[-ROWS:].astype(np.float32)


def tensor(name: str, array: np.ndarray, datatype: str) -> triton.InferInput:
    entry = triton.InferInput(name, list(array.shape), datatype)
    entry.set_data_from_numpy(array)
    return entry


async def test_tritonclient_answers_equal_the_models_in_process(examples_repo: Path) -> None:
    cancer_model = joblib.load(examples_repo / "breast-cancer" / "model.joblib")
    digits_model = ort.InferenceSession(str(examples_repo / "digits" / "model.onnx"),
                                        providers=["CPUExecutionProvider"])
    async with grpc_app(examples_repo) as app:
        await app.sec.user("alice")
        headers = {"authorization": f"Bearer {await app.sec.key('alice')}"}
        async with triton_aio.InferenceServerClient(app.address) as client:
            assert await client.is_server_live() and await client.is_server_ready()
            assert await client.is_model_ready("digits", headers=headers)
            meta = await client.get_model_metadata("breast-cancer", headers=headers, as_json=True)
            assert meta["platform"] == "sklearn" and meta["inputs"] == [
                {"name": "features", "datatype": "FP64", "shape": ["-1", "30"]}]
            server = await client.get_server_metadata(headers=headers)
            assert server.name == "mlgate" and "binary_tensor_data" in server.extensions

            cancer = await client.infer("breast-cancer", [tensor("features", CANCER, "FP64")], request_id="r-7",
                                        headers=headers)
            assert cancer.get_response().id == "r-7" and cancer.get_response().model_version == "1"
            np.testing.assert_array_equal(cancer.as_numpy("predict"), cancer_model.predict(CANCER))
            np.testing.assert_array_equal(cancer.as_numpy("predict_proba"), cancer_model.predict_proba(CANCER))
            assert set(cancer.as_numpy("predict").tolist()) == {0, 1}  # both classes: not trivially equal

            digits = await client.infer("digits", [tensor("X", DIGITS, "FP32")], headers=headers, outputs=[
                triton.InferRequestedOutput("probabilities"), triton.InferRequestedOutput("label")])
            labels, probabilities = digits_model.run(None, {"X": DIGITS})
            assert [o.name for o in digits.get_response().outputs] == ["probabilities", "label"]
            np.testing.assert_array_equal(digits.as_numpy("label"), labels)
            np.testing.assert_allclose(digits.as_numpy("probabilities"), probabilities, rtol=1e-6)
            assert len(set(labels.tolist())) > 5

            # The classification extension: top-3 classes as BYTES "score:index:label".
            top = await client.infer("digits", [tensor("X", DIGITS[:2], "FP32")], headers=headers,
                                     outputs=[triton.InferRequestedOutput("probabilities", class_count=3)])
            best = top.as_numpy("probabilities")
            assert best.shape == (2, 3) and [int(row[0].split(b":")[1]) for row in best] == labels[:2].tolist()


async def test_typed_contents_and_the_request_id_metadata(examples_repo: Path) -> None:
    """Values in ``contents`` rather than raw bytes; x-request-id goes in and comes back out."""
    model = joblib.load(examples_repo / "breast-cancer" / "model.joblib")
    async with grpc_app(examples_repo) as app:
        await app.sec.user("alice")
        key = await app.sec.key("alice")
        request = pb.ModelInferRequest(model_name="breast-cancer", id="typed")
        request.inputs.add(name="features", datatype="FP64", shape=[3, 30]).contents.fp64_contents.extend(
            CANCER[:3].ravel().tolist())
        call = app.stub.ModelInfer(request, metadata=(*auth(key), ("x-request-id", "trace-42")))
        response = await call
        assert ("x-request-id", "trace-42") in tuple(await call.trailing_metadata())
        predict = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
        np.testing.assert_array_equal(predict, model.predict(CANCER[:3]))
        assert response.id == "typed" and [o.name for o in response.outputs] == ["predict", "predict_proba"]


async def test_streaming_answers_every_request_in_order_and_goes_on_after_an_error(examples_repo: Path) -> None:
    model = joblib.load(examples_repo / "breast-cancer" / "model.joblib")
    async with grpc_app(examples_repo) as app:
        await app.sec.user("alice")
        headers = {"authorization": f"Bearer {await app.sec.key('alice')}"}

        async def requests() -> AsyncIterator[dict[str, Any]]:
            for i in range(ROWS):
                if i == 7:  # a wrong datatype in the middle of the stream
                    yield {"model_name": "breast-cancer", "request_id": "bad",
                           "inputs": [tensor("features", CANCER[i:i + 1].astype(np.float32), "FP32")]}
                yield {"model_name": "breast-cancer", "request_id": str(i),
                       "inputs": [tensor("features", CANCER[i:i + 1], "FP64")]}

        async with triton_aio.InferenceServerClient(app.address) as client:
            answers = [answer async for answer in client.stream_infer(requests(), headers=headers)]
        assert len(answers) == ROWS + 1
        bad_result, error = answers[7]  # answered in its place, between requests 6 and 7
        assert bad_result is None and error is not None and "inputs[0].datatype" in error.message()
        results = [result for result, _ in answers[:7] + answers[8:]]
        assert [r.get_response().id for r in results] == [str(i) for i in range(ROWS)]
        predicted = [int(r.as_numpy("predict")[0]) for r in results]
        assert predicted == model.predict(CANCER).tolist()


async def test_bytes_tensors_in_and_out(tmp_path: Path) -> None:
    write_python_model(tmp_path, "text", TEXT_MODEL, '[[inputs]]\nname = "text"\ndatatype = "BYTES"\nshape = [-1]\n',
                       '[[outputs]]\nname = "upper"\ndatatype = "BYTES"\nshape = [-1]\n'
                       '[[outputs]]\nname = "length"\ndatatype = "INT32"\nshape = [-1]\n')
    words = np.array([b"grpc", b"", b"nul\x00byte"], dtype=object)
    async with grpc_app(tmp_path) as app:
        await app.sec.user("alice")
        headers = {"authorization": f"Bearer {await app.sec.key('alice')}"}
        async with triton_aio.InferenceServerClient(app.address) as client:
            result = await client.infer("text", [tensor("text", words, "BYTES")], headers=headers)
        assert result.as_numpy("upper").tolist() == [b"GRPC", b"", b"NUL\x00BYTE"]
        assert result.as_numpy("length").tolist() == [4, 0, 8]


NAP_MODEL = '''
import time

class Model:
    """y = x, after 0.5 s per call (a batch of any size)."""

    def predict(self, batch):
        time.sleep(0.5)
        return {"y": batch["x"] * 1}
'''
QUICK_MODEL = '''
class Model:
    def predict(self, batch):
        return {"y": batch["x"] * 1}
'''


async def test_stream_requests_run_concurrently_and_are_answered_in_the_order_sent(tmp_path: Path) -> None:
    tensors = ('[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
               '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')
    write_python_model(tmp_path, "nap", NAP_MODEL, *tensors, "[batching]\nmax_batch_size = 16\n"
                       "max_queue_delay_ms = 100\n")
    write_python_model(tmp_path, "quick", QUICK_MODEL, *tensors)
    count = 16  # nap, quick, nap, quick, ...: the quick answers are ready long before the naps before them
    async with grpc_app(tmp_path) as app:
        await app.sec.user("alice")
        headers = {"authorization": f"Bearer {await app.sec.key('alice')}"}

        async def requests() -> AsyncIterator[dict[str, Any]]:
            for i in range(count):
                yield {"model_name": "quick" if i % 2 else "nap", "request_id": str(i),
                       "inputs": [tensor("x", np.array([i], np.float32), "FP32")]}

        async with triton_aio.InferenceServerClient(app.address) as client:
            start = time.monotonic()
            answers = [answer async for answer in client.stream_infer(requests(), headers=headers)]
            took = time.monotonic() - start
    assert [error for _, error in answers] == [None] * count
    assert [r.get_response().id for r, _ in answers] == [str(i) for i in range(count)]
    assert [r.as_numpy("y").tolist() for r, _ in answers] == [[float(i)] for i in range(count)]
    # The eight naps run together (one batch, at most two): about one model time, not eight (4 s).
    assert took < 2.0, took


COUNTING_MODEL = '''
import time

import numpy as np

class Model:
    """y = the number of rows of the batch this row was computed in, after 0.2 s per call."""

    def predict(self, batch):
        time.sleep(0.2)
        return {"y": np.full(len(batch["x"]), len(batch["x"]), dtype=np.float32)}
'''


@pytest.mark.parametrize("bound", [3, 16])
async def test_a_stream_runs_at_most_grpc_stream_concurrency_requests_at_once(tmp_path: Path, bound: int) -> None:
    tensors = ('[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
               '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')
    # A batch waits up to 300 ms for 16 rows: every request of the stream that is running is in it.
    write_python_model(tmp_path, "count", COUNTING_MODEL, *tensors,
                       "[batching]\nmax_batch_size = 16\nmax_queue_delay_ms = 300\n")
    count = 9
    async with grpc_app(tmp_path, grpc_stream_concurrency=bound) as app:
        await app.sec.user("alice")
        headers = {"authorization": f"Bearer {await app.sec.key('alice')}"}

        async def requests() -> AsyncIterator[dict[str, Any]]:
            for i in range(count):
                yield {"model_name": "count", "request_id": str(i),
                       "inputs": [tensor("x", np.array([i], np.float32), "FP32")]}

        async with triton_aio.InferenceServerClient(app.address) as client:
            answers = [answer async for answer in client.stream_infer(requests(), headers=headers)]
    assert [error for _, error in answers] == [None] * count
    assert [r.get_response().id for r, _ in answers] == [str(i) for i in range(count)]
    batch_sizes = [int(r.as_numpy("y")[0]) for r, _ in answers]
    if bound == 3:  # never more than 3 of the stream's requests in the model's queue at once
        assert max(batch_sizes) == 3, batch_sizes
    else:  # read as fast as they come: more than 3 in one batch (all 9 on a quiet machine)
        assert max(batch_sizes) > 3, batch_sizes
