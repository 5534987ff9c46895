"""KServe V2 Open Inference Protocol, JSON: request bodies -> numpy inputs, numpy outputs -> responses.

Source: KServe "Open Inference Protocol (V2)", REST "Inference" section: ``inputs[].{name, shape, datatype,
data, parameters}``, ``outputs[].{name, parameters}``, response ``{model_name, model_version, id,
outputs[]}``. Classification extension (Triton): an output requested with ``parameters.classification = k``
comes back as BYTES ``[batch, k]`` of ``"score:index"`` or ``"score:index:label"`` strings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import ValidationError

from mlgate.codecs.datatypes import DATATYPES, NUMPY_DTYPES, datatype_of
from mlgate.codecs.tensors import from_json_data, to_json_data
from mlgate.errors import InvalidInput, UnsupportedFeature
from mlgate.manifest import TensorSpec
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
    """Validate the envelope of a V2 inference request (not the tensor data). Raises InvalidInput."""
    if not isinstance(body, dict):
        raise InvalidInput("body: expected a JSON object with 'inputs'", field="body")
    try:
        return InferenceRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


def decode_inputs(request: InferenceRequest, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Each request input as a numpy array of its declared shape and the model's dtype.

    Raises InvalidInput for unknown or repeated input names, a datatype other than the model's, negative
    dimensions, and data whose element count is not the product of the shape.
    """
    by_name = {spec.name: spec for spec in specs}
    arrays: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(request.inputs):
        field = f"inputs[{i}]"
        spec = by_name.get(tensor.name)
        if spec is None:
            expected = ", ".join(repr(name) for name in by_name)
            raise InvalidInput(f"{field}.name: unknown input '{tensor.name}'; the model takes {expected}",
                               field=f"{field}.name")
        if tensor.name in arrays:
            raise InvalidInput(f"{field}.name: input '{tensor.name}' is given twice", field=f"{field}.name")
        if tensor.datatype != spec.datatype:
            hint = "" if tensor.datatype in DATATYPES else f" (V2 datatypes: {', '.join(DATATYPES)})"
            raise InvalidInput(
                f"{field}.datatype: input '{tensor.name}' is {spec.datatype}, got {tensor.datatype!r}{hint}",
                field=f"{field}.datatype",
            )
        if any(d < 0 for d in tensor.shape):
            raise InvalidInput(f"{field}.shape: dimensions must be >= 0, got {tensor.shape}",
                               field=f"{field}.shape")
        array = from_json_data(tensor.data, tensor.datatype, f"{field}.data")
        expected_size = math.prod(tensor.shape)
        if array.size != expected_size:
            raise InvalidInput(
                f"{field}.data: holds {array.size} values but shape {tensor.shape} needs {expected_size}",
                field=f"{field}.data",
            )
        try:
            arrays[tensor.name] = array.reshape(tensor.shape)
        except ValueError:
            raise InvalidInput(f"{field}.shape: {tensor.shape} is not a valid tensor shape",
                               field=f"{field}.shape") from None
    return arrays


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request: InferenceRequest,
    outputs: Mapping[str, np.ndarray],
    specs: Sequence[TensorSpec],
    labels: Sequence[str] | None,
) -> dict[str, Any]:
    """The V2 response body for ``outputs`` (``{name: [batch, ...]}``), in the requested order.

    Without ``request.outputs`` every declared output is returned in declaration order. Raises
    InvalidInput for an unknown requested output or a bad ``classification`` value.
    """
    by_name = {spec.name: spec for spec in specs}
    if request.outputs:
        selection = [(o.name, o.parameters or {}) for o in request.outputs]
    else:
        selection = [(spec.name, {}) for spec in specs if spec.name in outputs]
    encoded = []
    for i, (name, params) in enumerate(selection):
        if name not in by_name or name not in outputs:
            expected = ", ".join(repr(n) for n in by_name)
            raise InvalidInput(f"outputs[{i}].name: unknown output '{name}'; the model gives {expected}",
                               field=f"outputs[{i}].name")
        array = outputs[name]
        datatype = by_name[name].datatype
        classification = params.get("classification")
        if classification is not None:
            array = _classify(array, classification, labels, f"outputs[{i}].parameters.classification")
            datatype = "BYTES"
        encoded.append(_output(name, datatype, array))
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        body["id"] = request.id
    body["outputs"] = encoded
    return body


def _output(name: str, datatype: str, array: np.ndarray) -> dict[str, Any]:
    if datatype != "BYTES" and datatype != "BF16":
        target = NUMPY_DTYPES[datatype]
        if array.dtype != target:
            array = array.astype(target)
    elif datatype == "BYTES" and array.dtype.kind not in "USO":
        datatype = datatype_of(array.dtype)
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": to_json_data(array)}


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
