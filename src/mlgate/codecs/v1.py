"""KServe V1 / TF-Serving REST predict: ``{"instances": [...]}`` or ``{"inputs": ...}`` -> numpy, and back.

Source: TensorFlow Serving "RESTful API", Predict API: the row format ``instances`` (one entry per row; a
``{input name: value}`` object per row when the model has several inputs) and the columnar format
``inputs`` (a tensor, or ``{input name: tensor}``). Answers are ``{"predictions": [...]}``, one entry per row;
with several outputs each entry is ``{output name: value}``. V1 carries no datatypes: JSON values are
converted to the model's declared datatype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlgate.codecs.tensors import from_json_data
from mlgate.errors import InvalidInput
from mlgate.model.manifest import TensorSpec

__all__ = ["decode_predict", "encode_predictions"]


def decode_predict(body: Any, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """The inputs of a V1 predict body as ``{name: [batch, ...]}`` arrays of the model's dtypes.

    Raises InvalidInput when the body is not an object with exactly one of ``instances``/``inputs``, when
    a row lacks an input or names an unknown one, and for values of the wrong JSON type.
    """
    if not isinstance(body, dict):
        raise InvalidInput("body: expected a JSON object with 'instances' or 'inputs'", field="body")
    unknown = set(body) - {"instances", "inputs", "signature_name"}
    if unknown:
        raise InvalidInput(f"{sorted(unknown)[0]}: unknown field; expected 'instances' or 'inputs'",
                           field=sorted(unknown)[0])
    if ("instances" in body) == ("inputs" in body):
        raise InvalidInput("body: give exactly one of 'instances' (rows) or 'inputs' (columns)", field="body")
    names = [spec.name for spec in specs]
    by_name = {spec.name: spec for spec in specs}
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise InvalidInput("instances: expected a non-empty list of rows", field="instances")
        if all(isinstance(row, dict) for row in instances):
            columns = _columns_from_rows(instances, names)
        elif len(specs) == 1:
            columns = {names[0]: instances}
        else:
            raise InvalidInput(
                f"instances: the model takes several inputs ({', '.join(names)}); give each row as an object "
                "{input name: value}", field="instances")
        field = "instances"
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict):
            columns = inputs
        elif len(specs) == 1:
            columns = {names[0]: inputs}
        else:
            raise InvalidInput(f"inputs: the model takes several inputs; give {{{', '.join(names)}: tensor}}",
                               field="inputs")
        field = "inputs"
    arrays: dict[str, np.ndarray] = {}
    for name, data in columns.items():
        spec = by_name.get(name)
        if spec is None:
            raise InvalidInput(f"{field}: unknown input '{name}'; the model takes {', '.join(names)}",
                               field=f"{field}.{name}")
        array = from_json_data(data, spec.datatype, f"{field}.{name}" if len(specs) > 1 else field)
        if array.ndim == 0:
            array = array.reshape(1)
        arrays[name] = array
    return arrays


def _columns_from_rows(rows: list[dict[str, Any]], names: list[str]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for i, row in enumerate(rows):
        for key in row:
            if key not in columns:
                raise InvalidInput(f"instances[{i}]: unknown input '{key}'; the model takes {', '.join(names)}",
                                   field=f"instances[{i}].{key}")
        for name in names:
            if name not in row:
                raise InvalidInput(f"instances[{i}]: missing input '{name}'", field=f"instances[{i}].{name}")
            columns[name].append(row[name])
    return columns


def encode_predictions(outputs: Mapping[str, np.ndarray], specs: Sequence[TensorSpec]) -> dict[str, Any]:
    """``{"predictions": [...]}``: a value per row for one output, an object per row for several."""
    names = [spec.name for spec in specs if spec.name in outputs] or list(outputs)
    columns = {name: _plain(outputs[name]) for name in names}
    if len(names) == 1:
        return {"predictions": columns[names[0]]}
    batch = len(next(iter(columns.values())))
    return {"predictions": [{name: columns[name][r] for name in names} for r in range(batch)]}


def _plain(array: np.ndarray) -> list[Any]:
    values: list[Any] = array.tolist()
    if array.dtype.kind in "SO":
        return [_decode_bytes(v) for v in values]
    return values


def _decode_bytes(values: Any) -> Any:
    if isinstance(values, list):
        return [_decode_bytes(v) for v in values]
    if isinstance(values, bytes):
        return values.decode("utf-8", errors="backslashreplace")
    return values
