"""Per-model parts of the OpenAPI document: typed inference routes built from each model's signature.

The generic ``POST /v2/models/{model_name}/infer`` takes any tensors. For every READY model this adds a
concrete path ``/v2/models/<name>/infer`` (and ``/versions/<version>/infer`` when a model has several
versions) whose request body names that model's inputs exactly: tensor name, datatype, shape and the
element type of ``data``, with feature names, labels and an example. A client generator gets one typed
operation per model; a fuzzer gets bodies that reach the model. Models are known only after the lifespan
loaded them, so ``ModelSchemas`` rebuilds the document whenever the set of loaded models changes.
Source: OpenAPI 3.1 (JSON Schema 2020-12: ``const``, ``prefixItems``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

from mlgate.inference.registry import ModelHandle, ModelRegistry
from mlgate.model.manifest import TensorSpec

__all__ = ["ModelSchemas", "add_model_schemas", "data_schema", "tensor_example"]

Schema = dict[str, Any]

_INT_RANGES = {
    "INT8": (-(2**7), 2**7 - 1), "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1), "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1), "UINT16": (0, 2**16 - 1), "UINT32": (0, 2**32 - 1), "UINT64": (0, 2**64 - 1),
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_ERRORS = {
    "400": "Malformed or invalid request; `field` says where.",
    "404": "Unknown model or version.",
    "413": "Body over the configured limit.",
    "500": "The model failed; the log has details under X-Request-ID.",
    "503": "The model is not ready.",
}


def element_schema(datatype: str) -> Schema:
    """JSON Schema of one tensor element of a V2 datatype (BYTES: a string)."""
    if datatype == "BOOL":
        return {"type": "boolean"}
    if datatype == "BYTES":
        return {"type": "string"}
    if datatype in _INT_RANGES:
        low, high = _INT_RANGES[datatype]
        return {"type": "integer", "minimum": low, "maximum": high}
    return {"type": "number"}


def data_schema(spec: TensorSpec) -> Schema:
    """Schema of ``data`` for ``spec``: flat row-major values, or arrays nested to the shape."""
    element = element_schema(spec.datatype)
    nested: Schema = element
    for dim in reversed(spec.shape):
        nested = {"type": "array", "items": nested}
        if dim != -1:
            nested |= {"minItems": dim, "maxItems": dim}
    flat: Schema = {"type": "array", "items": element}
    if len(spec.shape) == 1:
        return nested
    return {"anyOf": [nested, flat], "description": "Arrays nested to the shape, or flat row-major values."}


def _shape_schema(shape: tuple[int, ...]) -> Schema:
    dims: list[Schema] = [{"const": d} if d != -1 else {"type": "integer", "minimum": 0} for d in shape]
    if shape[0] == -1:
        dims[0] = {"type": "integer", "minimum": 1, "description": "the batch"}
    return {"type": "array", "prefixItems": dims, "minItems": len(shape), "maxItems": len(shape),
            "description": f"The model's shape is {list(shape)} (-1: any size; the first is the batch)."}


def _describe(spec: TensorSpec) -> str:
    text = f"{spec.datatype} {list(spec.shape)}"
    if spec.feature_names:
        text += ". Columns: " + ", ".join(spec.feature_names)
    if spec.image:
        image = spec.image
        text += (f". One {image.color} {image.width}x{image.height} image per row ({image.layout}), values "
                 f"{image.value_range[0]:g}..{image.value_range[1]:g}")
    return text


def input_schema(spec: TensorSpec) -> Schema:
    """Schema of one request tensor that must be the model input ``spec``."""
    return {
        "type": "object",
        "title": spec.name,
        "description": _describe(spec),
        "required": ["name", "shape", "datatype", "data"],
        "additionalProperties": False,
        "properties": {
            "name": {"const": spec.name},
            "shape": _shape_schema(spec.shape),
            "datatype": {"const": spec.datatype},
            "parameters": {"type": "object"},
            "data": data_schema(spec),
        },
    }


def output_schema(spec: TensorSpec, labels: tuple[str, ...] | None) -> Schema:
    """Schema of one response tensor for output ``spec``. The classification extension answers BYTES."""
    description = _describe(spec)
    if labels:
        description += ". Labels by class index: " + ", ".join(f"{i} {label}" for i, label in enumerate(labels))
    return {
        "type": "object",
        "title": spec.name,
        "description": description,
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"const": spec.name},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"enum": [spec.datatype, "BYTES"] if spec.datatype != "BYTES" else ["BYTES"]},
            "parameters": {"type": "object"},
            "data": {"type": "array", "items": {"anyOf": [element_schema(spec.datatype), {"type": "string"}]}},
        },
    }


def tensor_example(spec: TensorSpec) -> dict[str, Any]:
    """A one-row request tensor for ``spec``: the manifest's ``example`` row when it has one, else zeros (false,
    "text") in the shape, -1 dimensions as 1."""
    if spec.example is not None:
        row: Any = json.loads(json.dumps(spec.example))  # tuples -> lists
        dims, level = [], row
        while isinstance(level, list):
            dims.append(len(level))
            level = level[0]
        return {"name": spec.name, "shape": [1, *dims], "datatype": spec.datatype, "data": [row]}
    shape = [1] + [d if d != -1 else 1 for d in spec.shape[1:]]
    value: Any = {"BOOL": False, "BYTES": "text"}.get(spec.datatype, 0)
    data: Any = value
    for dim in reversed(shape):
        data = [copy.deepcopy(data) for _ in range(dim)]
    return {"name": spec.name, "shape": shape, "datatype": spec.datatype, "data": data}


def _component(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _operation(handle: ModelHandle, request_ref: str, response_ref: str, versioned: bool) -> Schema:
    manifest = handle.manifest
    where = f"{handle.name}, version {handle.version}" if versioned else f"{handle.name} (its highest version)"
    description = f"Inference on **{handle.name}** version {handle.version} ({handle.platform})."
    if manifest and manifest.description:
        description += f"\n\n{manifest.description}"
    if handle.labels:
        description += "\n\nLabels by class index: " + ", ".join(f"{i} `{x}`" for i, x in enumerate(handle.labels))
    op_id = f"infer_{handle.name}" + (f"_v{handle.version}" if versioned else "")
    responses: Schema = {
        "200": {"description": "The outputs.", "content": {"application/json": {"schema": {"$ref": response_ref}}}}
    }
    for status, text in _ERRORS.items():
        responses[status] = {"description": text, "content": {"application/json": {"schema": _ERROR_REF}}}
    return {
        "tags": ["Models"],
        "summary": f"Inference on {where}",
        "description": description,
        "operationId": re.sub(r"[^A-Za-z0-9_]", "_", op_id),
        "requestBody": {
            "required": True,
            "content": {"application/json": {
                "schema": {"$ref": request_ref},
                "example": {"inputs": [tensor_example(spec) for spec in handle.inputs]},
            }},
        },
        "responses": responses,
    }


def _model_components(handle: ModelHandle) -> tuple[str, Schema, str, Schema]:
    base = _component(f"{handle.name}.v{handle.version}")
    request: Schema = {
        "type": "object",
        "title": f"{handle.name} inference request",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "Echoed in the response."},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": len(handle.inputs), "maxItems": len(handle.inputs),
                       "items": {"oneOf": [input_schema(spec) for spec in handle.inputs]}},
            "outputs": {"type": "array", "description": "Default: every output.", "items": {
                "type": "object", "required": ["name"], "additionalProperties": False,
                "properties": {
                    "name": {"enum": [spec.name for spec in handle.outputs]},
                    "parameters": {"type": "object", "properties": {
                        "classification": {"type": "integer", "minimum": 1,
                                           "description": "Answer the top-k classes as 'score:index:label'."},
                    }},
                }}},
        },
    }
    response: Schema = {
        "type": "object",
        "title": f"{handle.name} inference response",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"const": handle.name},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "outputs": {"type": "array", "items": {"oneOf": [output_schema(s, handle.labels) for s in handle.outputs]}},
        },
    }
    return f"{base}.InferenceRequest", request, f"{base}.InferenceResponse", response


def add_model_schemas(document: Schema, registry: ModelRegistry,
                      visible: Callable[[str], bool] = lambda name: True) -> Schema:
    """A copy of ``document`` with typed inference paths and two component schemas per READY model version.

    Every READY version gets its components; the unversioned path is added when the highest version
    (where such requests go) is READY, a versioned path for each READY version of a multi-version model.
    Only models for which ``visible(name)`` holds are named (the server passes "open to anonymous callers",
    since the document is public).
    """
    out = copy.deepcopy(document)
    components = out.setdefault("components", {}).setdefault("schemas", {})
    paths = out.setdefault("paths", {})
    added = False
    for name in registry.names():
        if not visible(name):
            continue
        versions = registry.versions(name)
        highest = registry.get(name)
        for version in versions:
            handle = registry.get(name, version)
            if not handle.ready or not handle.inputs:
                continue
            req_name, req, resp_name, resp = _model_components(handle)
            components[req_name], components[resp_name] = req, resp
            refs = (f"#/components/schemas/{req_name}", f"#/components/schemas/{resp_name}")
            if len(versions) > 1:
                path = f"/v2/models/{name}/versions/{version}/infer"
                paths[path] = {"post": _operation(handle, *refs, versioned=True)}
            if handle is highest:
                paths[f"/v2/models/{name}/infer"] = {"post": _operation(handle, *refs, versioned=False)}
            added = True
    if added:
        out.setdefault("tags", []).append({
            "name": "Models",
            "description": "One typed inference route per served model, built from its manifest and artifact.",
        })
    return out


class ModelSchemas:
    """The OpenAPI document with per-model routes, rebuilt when the registry's loaded models change.

    ``base`` builds the model-independent document (called once); ``document()`` is cheap while the set of
    (name, version, state) stays the same.
    """

    def __init__(self, base: Callable[[], Schema], registry: ModelRegistry,
                 visible: Callable[[str], bool] = lambda name: True) -> None:
        self._base = base
        self._base_doc: Schema | None = None
        self._registry = registry
        self._visible = visible
        self._key: tuple[tuple[str, str, str, int], ...] | None = None
        self._doc: Schema | None = None

    def document(self) -> Schema:
        """The OpenAPI document with a typed route per visible READY model, rebuilt when the models change."""
        key = tuple(sorted((h.name, h.version, h.state.value, id(h.runtime)) for h in self._registry
                           if self._visible(h.name)))
        if self._doc is None or key != self._key:
            if self._base_doc is None:
                self._base_doc = self._base()
            self._doc = add_model_schemas(self._base_doc, self._registry, self._visible)
            self._key = key
        return self._doc
