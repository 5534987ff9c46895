"""What the boosted-tree runtimes (xgboost, lightgbm) share: the signature read from the model file, and
``predict`` / ``predict_proba`` computed from the booster's own prediction as the scikit-learn wrappers do.

Signature: one input ``input-0`` FP32 ``[-1, n_features]`` (``feature_names`` from the file when it was
trained on named columns). Classifiers (the objective says so) answer ``predict`` INT64 ``[-1]``, the class
index (the label in ``labels`` of the manifest), and ``predict_proba`` ``[-1, n_classes]``; regressors and
rankers answer ``predict`` ``[-1]`` (``[-1, k]`` for k targets).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mlgate.datatypes import Datatype
from mlgate.errors import ModelLoadError
from mlgate.model.manifest import TensorSpec
from mlgate.runtimes.base import Batch, Runtime

__all__ = ["TreeRuntime"]


class TreeRuntime(Runtime):
    """A booster whose ``raw(x)`` gives probabilities (classifiers) or values (regressors)."""

    n_classes: int
    """0 for a regressor; 2 or more for a classifier."""
    raw: Callable[[np.ndarray], np.ndarray]
    proba_type: Datatype = "FP32"

    def describe(self, n_features: int, names: Sequence[str] | None, n_targets: int = 1) -> None:
        """Fill in the signature the manifest left out, and check one it declares."""
        if not self.inputs:
            self.inputs = (TensorSpec(name="input-0", datatype="FP32", shape=(-1, n_features),
                                      feature_names=tuple(names) if names else None),)
        if len(self.inputs) != 1 or self.inputs[0].shape[1:] not in ((n_features,), (-1,)):
            raise ModelLoadError(f"the model takes one input of {n_features} features: [-1, {n_features}]")
        if not self.outputs:
            if self.n_classes:
                self.outputs = (TensorSpec(name="predict", datatype="INT64", shape=(-1,)),
                                TensorSpec(name="predict_proba", datatype=self.proba_type,
                                           shape=(-1, self.n_classes)))
            else:
                shape = (-1,) if n_targets == 1 else (-1, n_targets)
                self.outputs = (TensorSpec(name="predict", datatype=self.proba_type, shape=shape),)
        known = {"predict", "predict_proba"} if self.n_classes else {"predict"}
        unknown = [spec.name for spec in self.outputs if spec.name not in known]
        if unknown:
            raise ModelLoadError(f"outputs {unknown}: this model answers {sorted(known)}")
        self._input = self.inputs[0].name
        self._wanted = {spec.name for spec in self.outputs}

    def predict(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        """``input-0`` ``[n, n_features]`` -> ``predict`` ``[n]`` and, for classifiers, ``predict_proba``."""
        x = np.ascontiguousarray(batch[self._input], dtype=np.float32)
        raw = np.asarray(self.raw(x))
        if not self.n_classes:
            return {"predict": raw}
        proba = np.stack([1.0 - raw, raw], axis=1) if raw.ndim == 1 else raw  # binary: P(class 1) only
        out = {"predict": np.argmax(proba, axis=1).astype(np.int64)}
        if "predict_proba" in self._wanted:
            out["predict_proba"] = proba
        return out

