"""LightGBM models in LightGBM's text format (``.txt``, ``Booster.save_model``; ``LGBMClassifier`` saves
one with ``model.booster_.save_model(path)``). No pickle, no code runs on load.

Read from the file (see ``mlgate.runtimes.trees``): the feature count and names (LightGBM's placeholder
names ``Column_N`` are left out), and the objective, which decides the outputs: ``binary`` and
``multiclass`` are classifiers (``predict`` the class index, ``predict_proba`` FP64, as ``LGBMClassifier``
computes them); other objectives (``regression``, ``lambdarank``...) answer ``predict`` FP64 only.

Manifest: ``parameters.threads`` (LightGBM's ``num_threads``). LightGBM runs on the CPU: a ``device`` other
than ``cpu`` leaves the model not ready.
"""

from __future__ import annotations

import re

import numpy as np

from mlgate.errors import ModelLoadError
from mlgate.runtimes.support import positive_int, require
from mlgate.runtimes.trees import TreeRuntime

__all__ = ["LightGBMRuntime"]

_PLACEHOLDER = re.compile(r"^Column_\d+$")


class LightGBMRuntime(TreeRuntime):
    """``runtime = "lightgbm"``: a LightGBM native model file (``.txt``); features and objective read from it."""
    name = "lightgbm"
    platform = "lightgbm"

    def load(self) -> None:
        lgb = require("lightgbm", "lightgbm")
        path = self.artifact_path
        try:
            booster = lgb.Booster(model_file=str(path))
        except (lgb.basic.LightGBMError, ValueError) as exc:
            raise ModelLoadError(f"LightGBM could not load {path.name}: {exc}") from exc
        objective = str(booster.dump_model(num_iteration=0).get("objective", "")).split(" ")[0]
        if objective == "multiclass" or objective == "multiclassova":
            self.n_classes = booster.num_model_per_iteration()
        elif objective in ("binary", "cross_entropy"):
            self.n_classes = 2
        else:
            self.n_classes = 0
        self.proba_type = "FP64"
        threads = positive_int(self.manifest.parameters, "threads")
        self._predict_params = {"num_threads": threads} if threads else {}
        self.booster = booster
        self.raw = self._predict
        names = booster.feature_name()
        named = None if all(_PLACEHOLDER.match(n) for n in names) else names
        self.describe(booster.num_feature(), named)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(x, **self._predict_params))

    def unload(self) -> None:
        self.__dict__.pop("booster", None)
