"""scikit-learn estimators saved with skops (``.skops``, safe), joblib or pickle.

Outputs ``predict`` (``[batch]``, or ``[batch, k]`` for multi-output estimators) and, when the estimator
has it, ``predict_proba`` (``[batch, n_classes]`` FP64). Without declared inputs the single input is
``input-0``, FP64 ``[-1, n_features_in_]``.

Security: unpickling (``.joblib``, ``.pkl``) runs code from the file; serve only artifacts you trust, and
accept them only from callers with the deploy right. ``.skops`` files (``skops.io.dump``) load without
running code: types outside skops' trusted set are refused unless the manifest lists them in
``parameters.trusted_types`` (e.g. ``["numpy.float64"]``), and the load error names them.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlgate.datatypes import datatype_of
from mlgate.errors import ModelLoadError
from mlgate.model.manifest import TensorSpec
from mlgate.runtimes.base import Batch, Runtime

__all__ = ["SklearnRuntime"]


class SklearnRuntime(Runtime):
    """``runtime = "sklearn"``: a scikit-learn estimator or pipeline (joblib, pickle or skops); ``predict``
    and, for classifiers, ``predict_proba`` as outputs.
    """
    name = "sklearn"
    platform = "sklearn"

    def load(self) -> None:
        path = self.artifact_path
        if path.suffix == ".skops":
            model = self._load_skops(path)
        elif path.suffix in {".pkl", ".pickle"}:
            with path.open("rb") as fh:
                model = pickle.load(fh)
        else:
            import joblib

            model = joblib.load(path)
        if not hasattr(model, "predict"):
            raise ModelLoadError(f"{path.name} holds a {type(model).__name__}, which has no predict()")
        self.model = model
        self.has_proba = hasattr(model, "predict_proba")
        self.columns = _frame_builder(model)
        self.split = _split_pipeline(model) if self.has_proba else None
        if len(self.inputs) > 1:
            raise ModelLoadError("the sklearn runtime takes exactly one input tensor")
        if not self.inputs:
            n = getattr(model, "n_features_in_", None)
            self.inputs = (TensorSpec(name="input-0", datatype="FP64", shape=(-1, n if n else -1)),)
        if not self.outputs:
            self.outputs = self._discover_outputs()

    def _load_skops(self, path: Path) -> Any:
        import skops.io

        allowed = self.manifest.parameters.get("trusted_types", [])
        if not isinstance(allowed, list) or not all(isinstance(t, str) for t in allowed):
            raise ModelLoadError("parameters.trusted_types must be a list of type names, e.g. ['numpy.float64']")
        untrusted = skops.io.get_untrusted_types(file=path)
        refused = sorted(set(untrusted) - set(allowed))
        if refused:
            raise ModelLoadError(f"{path.name} holds types skops does not trust: {', '.join(refused)}; list the ones "
                                 "you trust in the manifest's parameters.trusted_types")
        return skops.io.load(path, trusted=untrusted)

    def _discover_outputs(self) -> tuple[TensorSpec, ...]:
        classes = getattr(self.model, "classes_", None)
        label_type = "FP64" if classes is None else datatype_of(np.asarray(classes).dtype)
        outputs = [TensorSpec(name="predict", datatype=label_type, shape=(-1,))]
        if self.has_proba:
            n_classes = len(classes) if classes is not None else -1
            outputs.append(TensorSpec(name="predict_proba", datatype="FP64", shape=(-1, n_classes)))
        return tuple(outputs)

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        (x,) = batch.values()
        if self.columns is not None:
            x = self.columns(x)
        wanted = {spec.name for spec in self.outputs}
        out: dict[str, np.ndarray] = {}
        if self.split is not None and "predict" in wanted and "predict_proba" in wanted:
            # Both answers of a pipeline: its transforms once, then the final estimator's two methods, which
            # is what Pipeline.predict and Pipeline.predict_proba each do (the same numbers, less time; see
            # benchmarks/RESULTS.md).
            transforms, final = self.split
            features = transforms.transform(x)
            return {"predict": np.asarray(final.predict(features)),
                    "predict_proba": np.asarray(final.predict_proba(features))}
        if "predict" in wanted:
            out["predict"] = np.asarray(self.model.predict(x))
        if self.has_proba and "predict_proba" in wanted:
            out["predict_proba"] = np.asarray(self.model.predict_proba(x))
        return out


def _split_pipeline(model: Any) -> tuple[Any, Any] | None:
    """(the transforms as one Pipeline, the final estimator) of a Pipeline of two or more steps whose final
    estimator has predict and predict_proba; None for anything else."""
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline) or len(model.steps) < 2:
        return None
    final = model.steps[-1][1]
    if not (hasattr(final, "predict") and hasattr(final, "predict_proba")):
        return None
    return model[:-1], final


def _frame_builder(model: Any) -> Any:
    """For an estimator fitted on a pandas DataFrame: rows -> a DataFrame with its column names (as fitted)."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return None
    try:
        import pandas as pd
    except ImportError:
        return None
    columns = list(names)
    return lambda x: pd.DataFrame(x, columns=columns)
