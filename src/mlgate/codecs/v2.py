"""KServe V2 Open Inference Protocol, JSON: request bodies -> numpy inputs, numpy outputs -> responses.

Source: KServe "Open Inference Protocol (V2)", REST "Inference" section: ``inputs[].{name, shape, datatype,
data, parameters}``, ``outputs[].{name, parameters}``, response ``{model_name, model_version, id,
outputs[]}``. Classification extension (Triton): an output requested with ``parameters.classification = k``
comes back as BYTES ``[batch, k]`` of ``"score:index"`` or ``"score:index:label"`` strings. Tensors sent or
asked for in binary (the binary tensor data extension) are handled by ``mlgate.codecs.binary``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import ValidationError

from mlgate.codecs import binary as binary_codec
from mlgate.codecs.images import decode_images
from mlgate.codecs.tensors import from_json_data, to_json_data
from mlgate.datatypes import DATATYPES, NUMPY_DTYPES, datatype_of
from mlgate.errors import InvalidInput, UnsupportedFeature
from mlgate.model.manifest import TensorSpec
from mlgate.types import InferenceRequest

__all__ = ["decode_inputs", "encode_response", "parse_request", "validation_error"]


def validation_error(errors: Sequence[Mapping[str, Any]]) -> InvalidInput:
    """The first of pydantic's ``errors()``, as an InvalidInput naming its location (``inputs[0].shape``)."""
    err = errors[0]
    loc = ""
    for part in err["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    what = err["msg"]
    if err["type"] == "extra_forbidden":
        what = "unknown field"
    elif err["type"] == "missing":
        what = "required field is missing"
    return InvalidInput(f"{loc or 'body'}: {what}", field=loc or None)


def parse_request(body: Any) -> InferenceRequest:
    """Validate the envelope of a V2 inference request (not the tensor data). Raises InvalidInput.

    An output named twice in ``outputs`` is refused here, before the model runs: each repeat would be
    encoded again, so a small request could ask for an answer many times its size.
    """
    if not isinstance(body, dict):
        raise InvalidInput("body: expected a JSON object with 'inputs'", field="body")
    try:
        request = InferenceRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None
    seen: set[str] = set()
    for i, output in enumerate(request.outputs or ()):
        if output.name in seen:
            raise InvalidInput(f"outputs[{i}].name: output '{output.name}' is asked for twice",
                               field=f"outputs[{i}].name")
        seen.add(output.name)
    return request


def decode_inputs(request: InferenceRequest, specs: Sequence[TensorSpec],
                  binary: memoryview | None = None) -> dict[str, np.ndarray]:
    """Each request input as a numpy array of its declared shape and the model's dtype.

    ``binary`` is the binary section of the body (binary tensor data extension), None when the request had
    none: inputs with ``parameters.binary_data_size`` take their bytes from it, in order, and together they
    must use all of it. Raises InvalidInput for unknown or repeated input names, a datatype other than the
    model's, negative dimensions, data whose element count is not the product of the shape, and binary
    sizes that do not add up; UnsupportedFeature for shared-memory inputs.

    An input that declares ``[inputs.image]`` also takes ``BYTES`` ``[batch]``: one encoded picture per row
    (raw in binary, base64 in JSON), made into the declared tensor by ``mlgate.codecs.images.decode_images``.
    """
    by_name = {spec.name: spec for spec in specs}
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for i, tensor in enumerate(request.inputs):
        field = f"inputs[{i}]"
        spec = by_name.get(tensor.name)
        if spec is None:
            expected = ", ".join(repr(name) for name in by_name)
            raise InvalidInput(f"{field}.name: unknown input '{tensor.name}'; the model takes {expected}",
                               field=f"{field}.name")
        if tensor.name in arrays:
            raise InvalidInput(f"{field}.name: input '{tensor.name}' is given twice", field=f"{field}.name")
        pictures = tensor.datatype == "BYTES" and spec.image is not None and spec.datatype != "BYTES"
        if tensor.datatype != spec.datatype and not pictures:
            hint = "" if tensor.datatype in DATATYPES else f" (V2 datatypes: {', '.join(DATATYPES)})"
            raise InvalidInput(
                f"{field}.datatype: input '{tensor.name}' is {spec.datatype}, got {tensor.datatype!r}{hint}",
                field=f"{field}.datatype",
            )
        if any(d < 0 for d in tensor.shape):
            raise InvalidInput(f"{field}.shape: dimensions must be >= 0, got {tensor.shape}",
                               field=f"{field}.shape")
        params = tensor.parameters or {}
        if "shared_memory_region" in params:
            raise UnsupportedFeature(f"{field}.parameters.shared_memory_region: shared-memory tensors are not "
                                     "supported; send the data in the body", field=f"{field}.parameters")
        size = params.get("binary_data_size")
        if size is not None:
            raw = _binary_slice(binary, offset, size, tensor.data, field)
            offset += len(raw)
            array = binary_codec.decode_tensor(raw, tensor.datatype, tensor.shape, field)
            arrays[tensor.name] = decode_images(array, spec, field) if pictures else array
            continue
        if tensor.data is None:
            raise InvalidInput(f"{field}.data: required field is missing (or send the tensor in binary, with "
                               "parameters.binary_data_size)", field=f"{field}.data")
        array = from_json_data(tensor.data, tensor.datatype, f"{field}.data")
        expected_size = math.prod(tensor.shape)
        if array.size != expected_size:
            raise InvalidInput(
                f"{field}.data: holds {array.size} values but shape {tensor.shape} needs {expected_size}",
                field=f"{field}.data",
            )
        try:
            array = array.reshape(tensor.shape)
        except ValueError:
            raise InvalidInput(f"{field}.shape: {tensor.shape} is not a valid tensor shape",
                               field=f"{field}.shape") from None
        arrays[tensor.name] = decode_images(array, spec, field) if pictures else array
    if binary is not None and offset != len(binary):
        raise InvalidInput(f"body: the binary section holds {len(binary)} bytes but the inputs' "
                           f"binary_data_size add up to {offset}", field="body")
    return arrays


def _binary_slice(binary: memoryview | None, offset: int, size: Any, data: Any, field: str) -> memoryview:
    where = f"{field}.parameters.binary_data_size"
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidInput(f"{where}: expected a byte count (an integer >= 0), got {size!r}", field=where)
    if data is not None:
        raise InvalidInput(f"{field}: give either data or parameters.binary_data_size, not both", field=field)
    if binary is None:
        raise InvalidInput(f"{where}: the request has no binary section; send the header "
                           f"{binary_codec.HEADER} with the length of the JSON part", field=where)
    if offset + size > len(binary):
        raise InvalidInput(f"{where}: {size} bytes from byte {offset} of the binary section, which holds only "
                           f"{len(binary)}", field=where)
    return binary[offset:offset + size]


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request: InferenceRequest,
    outputs: Mapping[str, np.ndarray],
    specs: Sequence[TensorSpec],
    labels: Sequence[str] | None,
    binary: bool = False,
) -> tuple[dict[str, Any], list[bytes]]:
    """The V2 response body for ``outputs`` (``{name: [batch, ...]}``), in the requested order, and the bytes
    of the outputs answered in binary (in the same order; empty when every output is JSON).
    ``binary=True`` answers every output in binary whatever the request's parameters say (gRPC).

    Without ``request.outputs`` every declared output is returned in declaration order. Raises
    InvalidInput for an unknown requested output, a bad ``classification`` value, or a ``binary_data`` /
    ``binary_data_output`` parameter that is not a boolean.
    """
    by_name = {spec.name: spec for spec in specs}
    all_binary = binary or _flag((request.parameters or {}).get("binary_data_output", False),
                                 "parameters.binary_data_output")
    if request.outputs:
        selection = [(o.name, o.parameters or {}) for o in request.outputs]
    else:
        selection = [(spec.name, {}) for spec in specs if spec.name in outputs]
    encoded = []
    chunks: list[bytes] = []
    for i, (name, params) in enumerate(selection):
        if name not in by_name or name not in outputs:
            expected = ", ".join(repr(n) for n in by_name)
            raise InvalidInput(f"outputs[{i}].name: unknown output '{name}'; the model gives {expected}",
                               field=f"outputs[{i}].name")
        array = outputs[name]
        datatype: str = by_name[name].datatype
        classification = params.get("classification")
        if classification is not None:
            array = _classify(array, classification, labels, f"outputs[{i}].parameters.classification")
            datatype = "BYTES"
        datatype, array = _conform(datatype, array)
        output: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary or _flag(params.get("binary_data", all_binary), f"outputs[{i}].parameters.binary_data"):
            chunks.append(binary_codec.encode_tensor(array, datatype))
            output["parameters"] = {"binary_data_size": len(chunks[-1])}
        else:
            output["data"] = to_json_data(array)
        encoded.append(output)
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        body["id"] = request.id
    body["outputs"] = encoded
    return body, chunks


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field}: expected true or false, got {value!r}", field=field)
    return value


def _conform(datatype: str, array: np.ndarray) -> tuple[str, np.ndarray]:
    """The output in its declared datatype (a BYTES output the model gave as numbers keeps its numbers)."""
    if datatype != "BYTES" and datatype != "BF16":
        target = NUMPY_DTYPES[datatype]
        if array.dtype != target:
            array = array.astype(target)
    elif datatype == "BYTES" and array.dtype.kind not in "USO":
        datatype = datatype_of(array.dtype)
    return datatype, array


def _classify(array: np.ndarray, k: Any, labels: Sequence[str] | None, field: str) -> np.ndarray:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"{field}: expected a positive integer, got {k!r}", field=field)
    if array.ndim != 2 or array.dtype.kind not in "iuf":
        raise UnsupportedFeature(
            f"{field}: classification needs a numeric [batch, classes] output, this one is "
            f"{array.dtype} {list(array.shape)}", field=field)
    k = min(k, array.shape[1])
    top = np.argsort(-array, axis=1, kind="stable")[:, :k]
    rows = []
    for r, indices in enumerate(top.tolist()):
        row = []
        for idx in indices:
            text = f"{float(array[r, idx]):g}:{idx}"
            if labels is not None and idx < len(labels):
                text += f":{labels[idx]}"
            row.append(text.encode())
        rows.append(row)
    out = np.empty((array.shape[0], k), dtype=object)
    out[:] = rows
    return out
