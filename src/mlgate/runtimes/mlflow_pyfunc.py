"""MLflow ``python_function`` models that have no native flavor mlgate serves (custom ``PythonModel``s).

Loaded with ``mlflow.pyfunc.load_model`` from the model directory, so MLflow must be installed in the
server's environment (``pip install mlflow-skinny``; without it loading fails with that advice). The
signature in ``MLmodel`` gives the one input and the one output (``mlgate.model.mlflow``); a column
signature is passed to the model as a pandas DataFrame with those columns.

Security: a custom model is unpickled with cloudpickle and runs its own code; serve only models you trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mlgate.errors import ModelLoadError
from mlgate.runtimes.base import Batch, Runtime

__all__ = ["MlflowPyfuncRuntime"]


class MlflowPyfuncRuntime(Runtime):
    """``runtime = "mlflow_pyfunc"``: an MLflow pyfunc model directory (``mlflow.pyfunc.load_model``), its
    signature as the model's inputs and outputs. Unpickles the author's code: serve only models you trust.
    """
    name = "mlflow_pyfunc"
    platform = "mlflow_pyfunc"

    def load(self) -> None:
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise ModelLoadError("an MLflow python_function model needs a signature with one input and one output")
        try:
            import mlflow.pyfunc
        except ImportError as exc:
            raise ModelLoadError("serving an MLflow python_function model needs MLflow: "
                                 "pip install mlflow-skinny") from exc
        self.model = mlflow.pyfunc.load_model(str(self.model_dir))
        self.columns = self.inputs[0].feature_names

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        (x,) = batch.values()
        data: Any = x
        if self.columns is not None:
            import pandas as pd

            data = pd.DataFrame(x, columns=list(self.columns))
        result = self.model.predict(data, params=dict(parameters) or None)
        return {self.outputs[0].name: np.asarray(result)}
