"""Every refusal as its gRPC status, naming the field, and the next call served; security as over REST."""

from __future__ import annotations

import contextlib
from pathlib import Path

import anyio
import grpc
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sqlalchemy import select

from mlgate.db.engine import Database
from mlgate.db.tables.predlog import PredictionRecord
from mlgate.protocols.grpc import grpc_service_pb2 as pb
from tests.fakes import ERROR_MODEL, write_python_model
from tests.protocols.grpc.conftest import GrpcApp, auth, grpc_app

pytestmark = pytest.mark.anyio

ROWS = load_breast_cancer().data[:2]
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def good(rows: np.ndarray = ROWS, **fields: object) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="breast-cancer", **fields)  # type: ignore[arg-type]
    request.inputs.add(name="features", datatype="FP64", shape=list(rows.shape))
    request.raw_input_contents.append(rows.astype("<f8").tobytes())
    return request


def bad_requests() -> list[tuple[str, pb.ModelInferRequest, grpc.StatusCode, str]]:
    """(what, request, status, field named) for each bad input of the REST suite that gRPC can carry."""
    cases = []

    def case(what: str, request: pb.ModelInferRequest, field: str, status: grpc.StatusCode = INVALID) -> None:
        cases.append((what, request, status, field))

    r = good(); r.inputs[0].name = "nope"  # noqa: E702
    case("unknown input", r, "inputs[0].name")
    r = good(); r.inputs[0].datatype = "FP32"  # noqa: E702
    case("wrong datatype", r, "inputs[0].datatype")
    r = good(); r.inputs[0].datatype = "FLOAT"  # noqa: E702
    case("unknown datatype", r, "inputs[0].datatype")
    r = good(); r.inputs[0].shape[:] = [2, 29]  # noqa: E702
    case("raw size that does not fit the shape", r, "inputs[0].parameters.binary_data_size")
    r = good(); r.inputs[0].shape[:] = [1, 60]  # noqa: E702
    r.raw_input_contents[0] = ROWS.astype("<f8").tobytes()
    case("shape the model does not take", r, "inputs[features].shape")
    r = good(); r.inputs[0].shape[:] = [-2, 30]  # noqa: E702
    case("negative dimension", r, "inputs[0].shape")
    r = good(); r.raw_input_contents.append(b"extra")  # noqa: E702
    case("more raw contents than inputs", r, "raw_input_contents")
    r = good(); r.inputs.add(name="features", datatype="FP64", shape=[2, 30])  # noqa: E702
    r.raw_input_contents.append(ROWS.tobytes())
    case("an input given twice", r, "inputs[1].name")
    r = good(np.full((2, 30), np.nan))
    case("NaN where the model takes finite numbers", r, "inputs[features].data")
    r = pb.ModelInferRequest(model_name="breast-cancer")
    t = r.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    t.contents.int64_contents.extend([1] * 30)
    case("values in the contents field of another datatype", r, "inputs[0].contents")
    r = pb.ModelInferRequest(model_name="breast-cancer")
    r.inputs.add(name="features", datatype="FP64", shape=[1, 30]).contents.fp64_contents.extend([1.0] * 29)
    case("typed contents whose count is not the shape's", r, "inputs[0].data")
    r = pb.ModelInferRequest(model_name="breast-cancer")
    r.inputs.add(name="features", datatype="FP64", shape=[1, 30])
    case("no data at all", r, "inputs[0].data")
    r = good(); r.outputs.add(name="nope")  # noqa: E702
    case("unknown requested output", r, "outputs[0].name")
    r = good(); r.outputs.add(name="predict_proba").parameters["classification"].int64_param = 0  # noqa: E702
    case("classification of 0 classes", r, "outputs[0].parameters.classification")
    r = good(); r.model_name = "no-such-model"  # noqa: E702
    case("unknown model", r, "model_name", grpc.StatusCode.NOT_FOUND)
    r = good(); r.model_version = "9"  # noqa: E702
    case("unknown version", r, "model_version", grpc.StatusCode.NOT_FOUND)
    return cases


async def refused(app: GrpcApp, request: pb.ModelInferRequest, key: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await app.stub.ModelInfer(request, metadata=auth(key))
    return caught.value


async def test_every_bad_input_is_invalid_argument_naming_the_field_and_the_next_call_is_served(
    examples_repo: Path,
) -> None:
    async with grpc_app(examples_repo, grpc_max_message_bytes=64 * 1024) as app:
        await app.sec.user("alice")
        key = await app.sec.key("alice")
        for what, request, status, field in bad_requests():
            error = await refused(app, request, key)
            trailers = dict(error.trailing_metadata() or ())
            assert error.code() == status, (what, error.code(), error.details())
            assert trailers.get("mlgate-error-field") == field, (what, trailers, error.details())
            assert error.details().startswith(field), (what, error.details())
            served = await app.stub.ModelInfer(good(), metadata=auth(key))
            assert np.frombuffer(served.raw_output_contents[0], "<i8").shape == (2,), what
        # A message over grpc_max_message_bytes is refused by grpc before it is decoded.
        big = good(np.ones((300, 30)))
        assert big.ByteSize() > 64 * 1024
        assert (await refused(app, big, key)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await app.stub.ModelInfer(good(), metadata=auth(key))).model_name == "breast-cancer"


async def test_no_key_wrong_scope_and_over_the_limit(examples_repo: Path) -> None:
    tiers = {"default": {"requests": "3/minute"}}
    async with grpc_app(examples_repo, rate_limit_tiers=tiers) as app:
        await app.sec.user("alice")
        digits_only = await app.sec.key("alice", models=["digits"])
        key = await app.sec.key("alice", name="all models")
        with pytest.raises(grpc.aio.AioRpcError) as no_key:
            await app.stub.ModelInfer(good())
        assert no_key.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as bad_key:
            await app.stub.ModelInfer(good(), metadata=auth("mlg_000000000000_not-a-key"))
        assert bad_key.value.code() == grpc.StatusCode.UNAUTHENTICATED
        scoped = await refused(app, good(), digits_only)
        assert scoped.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as metadata:
            await app.stub.ModelMetadata(pb.ModelMetadataRequest(name="breast-cancer"), metadata=auth(digits_only))
        assert metadata.value.code() == grpc.StatusCode.PERMISSION_DENIED
        for _ in range(3):
            await app.stub.ModelInfer(good(), metadata=auth(key))
        over = await refused(app, good(), key)
        trailers = dict(over.trailing_metadata() or ())
        assert over.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and trailers["mlgate-error-code"] == "rate_limited"
        assert 1 <= int(trailers["retry-after"]) <= 60
        # The repository extension asks for the deploy right, as over REST.
        with pytest.raises(grpc.aio.AioRpcError) as load:
            await app.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="digits"),
                                               metadata=auth(digits_only))
        assert load.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_model_that_raises_is_internal_with_a_generic_message(tmp_path: Path) -> None:
    write_python_model(tmp_path, "boom", ERROR_MODEL, '[[inputs]]\nname = "x"\ndatatype = "FP32"\nshape = [-1]\n',
                       '[[outputs]]\nname = "y"\ndatatype = "FP32"\nshape = [-1]\n')
    async with grpc_app(tmp_path) as app:
        await app.sec.user("alice")
        key = await app.sec.key("alice")
        request = pb.ModelInferRequest(model_name="boom")
        request.inputs.add(name="x", datatype="FP32", shape=[2])
        request.raw_input_contents.append(np.ones(2, "<f4").tobytes())
        error = await refused(app, request, key)
        assert error.code() == grpc.StatusCode.INTERNAL and "secret" not in error.details()
        assert "server log" in error.details()


async def test_served_and_refused_calls_reach_the_prediction_log_with_their_request_id(examples_repo: Path) -> None:
    async with grpc_app(examples_repo, rate_limit_tiers={"default": {"requests": "3/minute"}},
                        prediction_log_interval_s=0.05) as app:
        await app.sec.user("alice")
        key = await app.sec.key("alice")
        caller = "key:" + "_".join(key.split("_")[:2]) + " (user:alice)"
        ids = ("served-1", "bad-2", "served-3", "limited-4")
        await app.stub.ModelInfer(good(), metadata=(*auth(key), ("x-request-id", ids[0])))
        bad = good()
        bad.inputs[0].datatype = "FP32"
        for request, request_id in ((bad, ids[1]), (good(), ids[2]), (good(), ids[3])):
            with contextlib.suppress(grpc.aio.AioRpcError):
                await app.stub.ModelInfer(request, metadata=(*auth(key), ("x-request-id", request_id)))
        with pytest.raises(grpc.aio.AioRpcError):  # never admitted: never a row
            await app.stub.ModelInfer(good())
        database = app.sec.app.state.mlgate.database
        with anyio.fail_after(10):
            while len(rows := await _records(database)) < 4:
                await anyio.sleep(0.05)
        await anyio.sleep(0.3)  # anything else would have been written by now
        rows = await _records(database)
        assert [(r.model, r.status, r.caller, r.request_id) for r in rows] == [
            ("breast-cancer", 200, caller, ids[0]), ("breast-cancer", 400, caller, ids[1]),
            ("breast-cancer", 200, caller, ids[2]), ("breast-cancer", 429, caller, ids[3])]


async def _records(database: Database) -> list[PredictionRecord]:
    async with database.session() as session:
        return list((await session.execute(select(PredictionRecord).order_by(PredictionRecord.id))).scalars())
