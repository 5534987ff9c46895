"""MLflow model directories as they are: the ``MLmodel`` file becomes a manifest, no ``model.toml`` needed.

Flavors served (MLflow "MLmodel format" and "Storage Format" docs):
- ``sklearn``: ``pickled_model`` is the artifact, in the format ``serialization_format`` says (``skops``,
  MLflow's default, loaded safely with the ``skops`` package; ``pickle`` / ``cloudpickle``, which run code
  on load) -> the ``sklearn`` runtime;
- ``onnx``: ``data`` is the ``.onnx`` file -> the ``onnx`` runtime;
- ``keras`` (``data/model.keras`` -> ``keras``; an exported SavedModel -> ``tensorflow``), ``tensorflow``
  (``saved_model_dir`` -> ``tensorflow``), ``pytorch`` logged with ``serialization_format="pt2"``
  (``data/model.pt2`` -> ``torch``; a pickled ``model.pth`` is refused), ``xgboost`` (``data`` -> ``xgboost``),
  ``lightgbm`` (a Booster's text file -> ``lightgbm``; a scikit-learn wrapper saved with skops -> ``sklearn``),
  ``transformers`` (``model/`` and ``components/`` -> ``transformers``): the runtime reads the signature from
  the file, as it does without MLflow;
- any other ``python_function`` model (a custom ``PythonModel``) -> the ``mlflow_pyfunc`` runtime, which
  needs MLflow installed where it is served, and a signature.

The ``signature`` becomes the input and output schema: a tensor signature maps its numpy dtype and shape;
a column signature (one ``{"type", "name"}`` per column) becomes one ``[-1, n_columns]`` input whose
``feature_names`` are the columns. The name is the directory's (or the pushed name), the version ``1``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from pydantic import ValidationError

from mlgate.datatypes import Datatype
from mlgate.errors import ModelLoadError
from mlgate.model.manifest import MAX_MANIFEST_BYTES, ModelManifest, TensorSpec

__all__ = ["MLMODEL_FILE", "read_mlmodel"]

MLMODEL_FILE = "MLmodel"

_NUMPY_TO_V2: dict[str, Datatype] = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "float16": "FP16",
    "float32": "FP32", "float64": "FP64", "object": "BYTES", "str": "BYTES", "bytes": "BYTES",
}
_COLUMN_TO_V2: dict[str, Datatype] = {
    "boolean": "BOOL", "integer": "INT32", "long": "INT64", "float": "FP32", "double": "FP64",
    "string": "BYTES", "binary": "BYTES",
}


def _schema(raw: Any, role: str, default_name: str) -> tuple[TensorSpec, ...]:
    if not raw:
        return ()
    specs = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(specs, list) or not specs:
        return ()
    if all(s.get("type") == "tensor" for s in specs):
        out = []
        for i, spec in enumerate(specs):
            tensor = spec.get("tensor-spec", {})
            dtype = _NUMPY_TO_V2.get(str(tensor.get("dtype")))
            if dtype is None:
                raise ModelLoadError(f"MLmodel signature {role}: dtype {tensor.get('dtype')!r} is not supported")
            name = spec.get("name") or (default_name if len(specs) == 1 else f"{default_name}-{i}")
            out.append(TensorSpec(name=name, datatype=dtype, shape=tuple(tensor.get("shape", (-1,)))))
        return tuple(out)
    types = {_COLUMN_TO_V2.get(str(s.get("type"))) for s in specs}
    if None in types or len(types) != 1:
        raise ModelLoadError(f"MLmodel signature {role}: columns must share one supported type "
                             f"(got {sorted(str(s.get('type')) for s in specs)})")
    names = tuple(str(s.get("name", f"c{i}")) for i, s in enumerate(specs))
    datatype = types.pop()
    assert datatype is not None
    return (TensorSpec(name=default_name, datatype=datatype, shape=(-1, len(specs)),
                       feature_names=names),)


def _framework_flavor(path: Path, flavor: str, spec: dict[str, Any],
                      directory: Path) -> tuple[str, str, dict[str, Any]]:
    """(runtime, artifact, parameters) of a framework flavor, as MLflow 3 lays it out."""
    if flavor == "keras":
        if spec.get("save_exported_model"):
            return "tensorflow", f"{spec.get('data', 'data')}/model", {}
        return "keras", f"{spec.get('data', 'data')}/model.keras", {}
    if flavor == "tensorflow":
        return "tensorflow", str(spec.get("saved_model_dir", "tf2model")), {}
    if flavor == "pytorch":
        data = str(spec.get("model_data", "data"))
        if not (directory / data / "model.pt2").is_file():
            raise ModelLoadError(f"{path}: this pytorch model is a pickle (model.pth), which runs code when "
                                 "loaded; log it with serialization_format='pt2' to serve it")
        return "torch", f"{data}/model.pt2", {}
    if flavor == "xgboost":
        return "xgboost", str(spec.get("data", "model.ubj")), {}
    if flavor == "lightgbm":
        data = str(spec.get("data", "model.lgb"))
        if spec.get("model_class") == "lightgbm.basic.Booster":
            return "lightgbm", data, {}
        if spec.get("serialization_format") == "skops":  # a scikit-learn wrapper (LGBMClassifier...)
            return "sklearn", data, {"trusted_types": spec.get("skops_trusted_types") or []}
        raise ModelLoadError(f"{path}: this lightgbm model is pickled, which runs code when loaded; log a "
                             "Booster or use MLflow's skops serialization to serve it")
    # transformers: the pipeline's model under model/, its tokenizer or processor under components/.
    return "transformers", str(spec.get("model_binary", "model")), {"task": spec.get("task"),
                                                                    "components": "components"}


def read_mlmodel(directory: Path, name: str | None = None) -> ModelManifest:
    """The manifest of an MLflow model directory. Raises ModelLoadError naming what is not supported."""
    path = directory / MLMODEL_FILE
    try:
        with path.open("rb") as fh:
            text = fh.read(MAX_MANIFEST_BYTES + 1)
        if len(text) > MAX_MANIFEST_BYTES:
            raise ModelLoadError(f"{path}: the MLmodel file is larger than {MAX_MANIFEST_BYTES} bytes")
        doc = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"{path}: cannot read the MLmodel file: {exc}") from exc
    flavors = doc.get("flavors") if isinstance(doc, dict) else None
    if not isinstance(flavors, dict):
        raise ModelLoadError(f"{path}: no flavors")
    parameters: dict[str, Any] = {"mlflow_flavor": None}
    reads_own_signature = ("keras", "tensorflow", "pytorch", "xgboost", "lightgbm", "transformers", "onnx")
    if "sklearn" in flavors:
        flavor = flavors["sklearn"]
        runtime, artifact = "sklearn", str(flavor.get("pickled_model", "model.pkl"))
        parameters.update(mlflow_flavor="sklearn", serialization_format=flavor.get("serialization_format"),
                          trusted_types=flavor.get("skops_trusted_types") or [])
    elif "onnx" in flavors:
        runtime, artifact = "onnx", str(flavors["onnx"].get("data", "model.onnx"))
        parameters["mlflow_flavor"] = "onnx"
    elif served := next((name for name in reads_own_signature if name in flavors), None):
        runtime, artifact, extra = _framework_flavor(path, served, flavors[served] or {}, directory)
        parameters.update(mlflow_flavor=served, **extra)
    elif "python_function" in flavors:
        runtime, artifact = "mlflow_pyfunc", MLMODEL_FILE
        parameters["mlflow_flavor"] = "python_function"
    else:
        raise ModelLoadError(f"{path}: flavors {sorted(flavors)} are not served; mlgate serves MLflow's sklearn, "
                             "onnx, keras, tensorflow, pytorch (pt2), xgboost, lightgbm, transformers and "
                             "python_function flavors")
    signature = doc.get("signature") or {}
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    # A framework file names its own tensors (and MLflow's column signatures of pipelines do not fit a
    # tensor): the runtime reads them from the file.
    if parameters["mlflow_flavor"] not in reads_own_signature:
        inputs = _schema(signature.get("inputs"), "inputs", "input-0")
        outputs = _schema(signature.get("outputs"), "outputs", "predict")
    if runtime == "mlflow_pyfunc" and (len(inputs) != 1 or len(outputs) != 1):
        raise ModelLoadError(f"{path}: a python_function model is served with a signature of one input and "
                             "one output (mlflow.models.infer_signature)")
    try:
        return ModelManifest(name=name or directory.name, version="1", runtime=runtime, artifact=artifact,
                             inputs=inputs, outputs=outputs, parameters=parameters)
    except ValidationError as exc:
        raise ModelLoadError(f"{path}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
