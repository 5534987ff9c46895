"""Runtimes: one module per framework, behind the contract in ``base``.

The framework is imported only when a model of that runtime loads, so an install without onnxruntime (say)
still serves scikit-learn models.
"""

from __future__ import annotations

import importlib

from mlgate.errors import ModelLoadError
from mlgate.runtimes.base import Batch, Executor, Runtime

__all__ = ["RUNTIMES", "Batch", "Executor", "Runtime", "runtime_class"]

RUNTIMES: dict[str, str] = {
    "sklearn": "mlgate.runtimes.sklearn:SklearnRuntime",
    "onnx": "mlgate.runtimes.onnx:OnnxRuntime",
    "python": "mlgate.runtimes.python:PythonRuntime",
    "keras": "mlgate.runtimes.keras:KerasRuntime",
    "torch": "mlgate.runtimes.torch:TorchRuntime",
    "xgboost": "mlgate.runtimes.xgboost:XGBoostRuntime",
    "lightgbm": "mlgate.runtimes.lightgbm:LightGBMRuntime",
    "tensorflow": "mlgate.runtimes.tensorflow:TensorFlowRuntime",
    "transformers": "mlgate.runtimes.transformers:TransformersRuntime",
    "mlflow_pyfunc": "mlgate.runtimes.mlflow_pyfunc:MlflowPyfuncRuntime",
    "sentence-transformers": "mlgate.runtimes.sentence_transformers:SentenceTransformersRuntime",
}


def runtime_class(name: str) -> type[Runtime]:
    """The Runtime subclass registered under ``name``; ModelLoadError if there is none."""
    try:
        target = RUNTIMES[name]
    except KeyError:
        known = ", ".join(sorted(RUNTIMES))
        raise ModelLoadError(f"unknown runtime {name!r} (known: {known})") from None
    module_name, _, attr = target.partition(":")
    cls: type[Runtime] = getattr(importlib.import_module(module_name), attr)
    return cls
