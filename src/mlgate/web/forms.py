"""What the playground shows for a model: one form per input and how to read the answer (no HTTP here).

Each input gets a form ``kind`` from its signature:

- ``image``: the input declares ``[inputs.image]``; an image upload and a drawing pad, one image per
  request, turned into values by the page as ``ImagePreprocessing`` says.
- ``table``: a numeric or BOOL input of shape ``[-1]`` or ``[-1, n]`` (n <= ``MAX_TABLE_COLUMNS``); one
  field per column, named by ``feature_names`` where the manifest gives them, one column of fields per
  example.
- ``text``: a BYTES input of shape ``[-1]`` or ``[-1, 1]``; one text per line.
- ``json``: anything else; the ``data`` of the tensor as JSON, nested to the shape.

The answer: a float output ``[-1, k]`` (k = number of labels, or any k >= 2 without labels) is read as the
class probabilities, and, when the model has labels or such probabilities, an integer output of shape
``[-1]`` or ``[-1, 1]`` as the class index. Other outputs are shown as they come.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from mlgate.datatypes import FLOAT_DATATYPES, INTEGER_DATATYPES
from mlgate.inference.registry import ModelHandle, ModelRegistry
from mlgate.model.manifest import TensorSpec
from mlgate.web.openapi import tensor_example

__all__ = ["MAX_TABLE_COLUMNS", "InputForm", "ModelPage", "ModelRow", "model_page", "model_rows"]

MAX_TABLE_COLUMNS = 256
"""Wider inputs get a JSON box: a form of more fields than this helps nobody."""

FormKind = Literal["image", "table", "text", "json"]


@dataclass(frozen=True)
class InputForm:
    """The form of one input tensor; ``spec()`` is what the page's JavaScript reads."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    kind: FormKind
    columns: tuple[str, ...] = ()
    image: dict[str, Any] | None = None
    image_shape: tuple[int, ...] = ()
    """The request shape of one image (batch 1), for the image kind."""
    example: str = ""
    """A one-row ``data`` as JSON, for the json kind."""
    example_row: Any = None
    """The manifest's ``example`` (one row, no batch dimension; None without one): the page's "Fill with the
    example" button puts it into the form."""

    def spec(self) -> dict[str, Any]:
        """The form as the playground's script reads it (JSON)."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape), "kind": self.kind,
                "columns": len(self.columns), "image": self.image, "image_shape": list(self.image_shape),
                "example": self.example_row}


@dataclass(frozen=True)
class ModelPage:
    """Everything ``/ui/models/{name}`` shows for one model version."""

    name: str
    version: str
    versions: tuple[str, ...]
    state: str
    platform: str
    description: str
    labels: tuple[str, ...]
    inputs: tuple[InputForm, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    class_output: str | None = None
    proba_output: str | None = None
    infer_path: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def has_example(self) -> bool:
        """Whether some input has an example row (the page then offers "Fill with the example")."""
        return any(f.example_row is not None for f in self.inputs)

    def spec(self) -> dict[str, Any]:
        """The JSON the page's script works from (embedded in the page, escaped by ``tojson``)."""
        return {
            "name": self.name, "version": self.version, "infer_path": self.infer_path,
            "labels": list(self.labels), "inputs": [f.spec() for f in self.inputs],
            "outputs": [o.name for o in self.outputs],
            "class_output": self.class_output, "proba_output": self.proba_output,
        }


@dataclass(frozen=True)
class ModelRow:
    """One line of the model list at ``/ui/``."""

    name: str
    state: str
    versions: tuple[tuple[str, str], ...]
    """(version, state) pairs, oldest first."""
    platform: str
    inputs: str
    description: str


def _image_shape(spec: TensorSpec) -> tuple[int, ...]:
    assert spec.image is not None
    image = spec.image
    row = spec.shape[1:]
    if -1 not in row:
        return (1, *row)
    by_rank = {
        1: (image.size,),
        2: (image.height, image.width),
        3: (image.height, image.width, image.channels) if image.layout == "HWC"
        else (image.channels, image.height, image.width),
    }
    dims = by_rank.get(len(row))
    if dims is None or any(want not in (-1, got) for want, got in zip(row, dims, strict=True)):
        raise ValueError(f"no way to lay a {image.width}x{image.height} image into shape {list(spec.shape)}")
    return (1, *dims)


def input_form(spec: TensorSpec) -> InputForm:
    """The form for one input (see the module docstring for the rules)."""
    base: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype, "shape": spec.shape,
                            "example_row": spec.example}
    if spec.image is not None:
        try:
            return InputForm(**base, kind="image", image=spec.image.model_dump(mode="json"),
                             image_shape=_image_shape(spec))
        except ValueError:
            pass
    rank, width = len(spec.shape), spec.shape[-1]
    if spec.datatype == "BYTES":
        if rank == 1 or (rank == 2 and width == 1):
            return InputForm(**base, kind="text")
        return InputForm(**base, kind="json", example=json.dumps(tensor_example(spec)["data"]))
    if rank == 1 or (rank == 2 and 1 <= width <= MAX_TABLE_COLUMNS):
        n = 1 if rank == 1 else width
        names = spec.feature_names if spec.feature_names and len(spec.feature_names) == n else None
        columns = names or tuple(f"{spec.name}[{i}]" for i in range(n))
        return InputForm(**base, kind="table", columns=tuple(columns))
    return InputForm(**base, kind="json", example=json.dumps(tensor_example(spec)["data"]))


def _answer_outputs(outputs: tuple[TensorSpec, ...], labels: tuple[str, ...]) -> tuple[str | None, str | None]:
    proba_output = next((o.name for o in outputs if o.datatype in FLOAT_DATATYPES and len(o.shape) == 2
                         and (o.shape[1] == len(labels) if labels else o.shape[1] >= 2)), None)
    if not labels and proba_output is None:
        return None, None  # an integer output of a model with no classes is just a number
    class_output = next((o.name for o in outputs if o.datatype in INTEGER_DATATYPES
                         and (len(o.shape) == 1 or (len(o.shape) == 2 and o.shape[1] == 1))), None)
    return class_output, proba_output


def model_page(registry: ModelRegistry, name: str, version: str | None = None) -> ModelPage:
    """The page of ``name`` at ``version`` (default: the highest). Raises ModelNotFound/ModelVersionNotFound."""
    handle = registry.get(name, version)
    manifest = handle.manifest
    labels = tuple(handle.labels or ())
    page: dict[str, Any] = {
        "name": handle.name, "version": handle.version, "versions": tuple(registry.versions(handle.name)),
        "state": handle.state.value, "platform": handle.platform,
        "description": manifest.description if manifest else "", "labels": labels,
        "infer_path": f"/v2/models/{handle.name}/versions/{handle.version}/infer",
    }
    if not handle.ready:
        return ModelPage(**page, notes=("This version is not ready: it cannot answer requests.",))
    class_output, proba_output = _answer_outputs(handle.outputs, labels)
    return ModelPage(**page, inputs=tuple(input_form(s) for s in handle.inputs), outputs=handle.outputs,
                     class_output=class_output, proba_output=proba_output)


def _signature(handle: ModelHandle) -> str:
    return ", ".join(f"{s.name} {s.datatype} {list(s.shape)}" for s in handle.inputs)


def model_rows(registry: ModelRegistry) -> list[ModelRow]:
    """One row per model name, described by its highest version, sorted by name."""
    rows = []
    for name in registry.names():
        handle = registry.get(name)
        versions = tuple((v, registry.get(name, v).state.value) for v in registry.versions(name))
        description = handle.manifest.description if handle.manifest else ""
        rows.append(ModelRow(name=name, state=handle.state.value, versions=versions, platform=handle.platform,
                             inputs=_signature(handle), description=description))
    return rows

