"""``ModelInferRequest`` -> numpy inputs and numpy outputs -> ``ModelInferResponse``, through the V2 codec.

The protobuf messages are turned into the V2 codec's own request (``mlgate.codecs.v2``), so names, datatypes,
shapes, element counts, binary sizes, requested outputs and classification are checked by the one
implementation that serves REST. ``raw_input_contents`` become the codec's binary section (the layout is the
binary tensor data extension's: little-endian, row-major, BYTES as 4-byte length + bytes); typed
``contents`` become its JSON data (BYTES through the binary layout). Outputs always go back as
``raw_output_contents``, one entry per output in order, as Triton answers.

Source: KServe Open Inference Protocol, "GRPC" section (``ModelInferRequest``, ``InferTensorContents``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlgate.codecs import binary as binary_codec
from mlgate.codecs import v2 as codec
from mlgate.errors import InvalidInput
from mlgate.model.manifest import TensorSpec
from mlgate.protocols.grpc import grpc_service_pb2 as pb
from mlgate.types import InferenceRequest

__all__ = ["CONTENTS_FIELDS", "decode_request", "encode_response", "parameters_of"]

CONTENTS_FIELDS: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
"""The ``InferTensorContents`` field holding each datatype's values (FP16 and BF16 travel raw only)."""


def parameters_of(parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A protobuf parameter map as plain values (bool, int, str or float)."""
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        choice = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, choice) if choice is not None else None
    return out


def decode_request(request: pb.ModelInferRequest,
                   specs: Sequence[TensorSpec]) -> tuple[InferenceRequest, dict[str, np.ndarray]]:
    """The V2 request and its inputs as numpy arrays of the model's dtypes (``specs``: the model's inputs).

    Raises InvalidInput naming the field: ``raw_input_contents`` whose count is not the inputs', an input
    with both raw and typed contents, values in a contents field other than the datatype's, and whatever
    ``mlgate.codecs.v2.decode_inputs`` refuses (unknown or repeated names, datatype, shape, sizes).
    """
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"raw_input_contents: {len(raw)} entries for {len(request.inputs)} inputs; send one per "
                           "input, in order", field="raw_input_contents")
    chunks: list[bytes] = []
    inputs: list[dict[str, Any]] = []
    for i, tensor in enumerate(request.inputs):
        params = parameters_of(tensor.parameters)
        entry: dict[str, Any] = {"name": tensor.name, "shape": list(tensor.shape), "datatype": tensor.datatype}
        has_contents = tensor.HasField("contents")
        if raw:
            if has_contents:
                raise InvalidInput(f"inputs[{i}].contents: give the data in contents or in raw_input_contents, "
                                   "not both", field=f"inputs[{i}].contents")
            chunks.append(raw[i])
            params["binary_data_size"] = len(raw[i])
        elif has_contents:
            data = _contents(tensor, i)
            if tensor.datatype == "BYTES":
                chunks.append(binary_codec.encode_tensor(np.asarray(data, dtype=object), "BYTES"))
                params["binary_data_size"] = len(chunks[-1])
            else:
                entry["data"] = data
        # neither: the codec answers that data is missing
        if params:
            entry["parameters"] = params
        inputs.append(entry)
    body: dict[str, Any] = {"inputs": inputs}
    if request.id:
        body["id"] = request.id
    if request.parameters:
        body["parameters"] = parameters_of(request.parameters)
    if request.outputs:
        body["outputs"] = [_requested(o) for o in request.outputs]
    parsed = codec.parse_request(body)
    binary = memoryview(b"".join(chunks)) if chunks else None
    return parsed, codec.decode_inputs(parsed, specs, binary)


def _contents(tensor: pb.ModelInferRequest.InferInputTensor, i: int) -> list[Any]:
    field = CONTENTS_FIELDS.get(tensor.datatype)
    used = [f.name for f, _ in tensor.contents.ListFields()]
    where = f"inputs[{i}].contents"
    if field is None:
        raise InvalidInput(f"{where}: datatype {tensor.datatype!r} has no typed contents; send it in "
                           "raw_input_contents", field=where)
    if any(name != field for name in used):
        raise InvalidInput(f"{where}: datatype {tensor.datatype} takes its values in {field}, got "
                           f"{', '.join(used)}", field=where)
    return list(getattr(tensor.contents, field))


def _requested(output: pb.ModelInferRequest.InferRequestedOutputTensor) -> dict[str, Any]:
    params = parameters_of(output.parameters)
    params.pop("binary_data", None)  # every output goes back raw
    return {"name": output.name, "parameters": params} if params else {"name": output.name}


def encode_response(request: InferenceRequest, outputs: Mapping[str, np.ndarray], *, model_name: str,
                    model_version: str, specs: Sequence[TensorSpec],
                    labels: Sequence[str] | None) -> pb.ModelInferResponse:
    """The response to ``request``: the requested outputs (else every declared one) as raw contents.

    Raises what ``mlgate.codecs.v2.encode_response`` raises (unknown output, bad classification)."""
    body, chunks = codec.encode_response(model_name=model_name, model_version=model_version, request=request,
                                         outputs=outputs, specs=specs, labels=labels, binary=True)
    tensor = pb.ModelInferResponse.InferOutputTensor
    return pb.ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request.id or "", raw_output_contents=chunks,
        outputs=[tensor(name=o["name"], datatype=o["datatype"], shape=o["shape"]) for o in body["outputs"]])
