"""XGBoost models in XGBoost's own formats: ``.ubj`` (UBJSON) or ``.json`` (``save_model``; also what the
scikit-learn wrappers ``XGBClassifier``/``XGBRegressor`` save). No pickle, no code runs on load.

Read from the file (see ``mlgate.runtimes.trees``): the feature count and names, and the objective, which
decides the outputs: ``binary:logistic`` and ``multi:softprob`` are classifiers (``predict`` the class index,
``predict_proba``, as ``XGBClassifier`` computes them), other objectives answer ``predict`` only (the
booster's prediction: a value for ``reg:*``, a score for ``rank:*``, the class for ``multi:softmax``).
Prediction uses ``inplace_predict`` (thread safe, no DMatrix copy).

Manifest: ``device`` (``cpu``, ``cuda``, ``cuda:N``: needs an XGBoost built with CUDA; the ``xgboost-cpu``
distribution of the ``xgboost`` extra is not), ``parameters.threads`` (XGBoost's ``nthread``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mlgate.errors import ModelLoadError
from mlgate.runtimes.support import cuda_index, positive_int, require
from mlgate.runtimes.trees import TreeRuntime

__all__ = ["XGBoostRuntime"]

CLASSIFIERS = ("binary:logistic", "multi:softprob")


class XGBoostRuntime(TreeRuntime):
    """``runtime = "xgboost"``: an XGBoost native model file (``.ubj`` or ``.json``); features and objective read
    from it, ``predict`` and, for classifiers, ``predict_proba``.
    """
    name = "xgboost"
    platform = "xgboost"
    cuda = True

    def load(self) -> None:
        xgb = require("xgboost", "xgboost")
        path = self.artifact_path
        if path.suffix not in (".ubj", ".json"):
            raise ModelLoadError(f"{path.name}: the xgboost runtime reads XGBoost's own formats, .ubj or .json "
                                 "(Booster.save_model / XGBClassifier.save_model)")
        try:
            booster = xgb.Booster(model_file=str(path))
            config = json.loads(booster.save_config())
        except (xgb.core.XGBoostError, ValueError) as exc:
            raise ModelLoadError(f"XGBoost could not load {path.name}: {exc}") from exc
        params: dict[str, Any] = {}
        threads = positive_int(self.manifest.parameters, "threads")
        if threads is not None:
            params["nthread"] = threads
        index = cuda_index(self.manifest.device)
        if index is not None:
            if not xgb.build_info().get("USE_CUDA"):
                raise ModelLoadError(f"device {self.manifest.device!r} asked for, but this XGBoost is built "
                                     "without CUDA (xgboost-cpu); set device = \"cpu\" or install the CUDA build")
            params["device"] = f"cuda:{index}"
        if params:
            booster.set_param(params)
        learner = config["learner"]
        objective = str(learner["objective"]["name"])
        model_param = learner["learner_model_param"]
        num_class = int(model_param.get("num_class", 0))
        self.n_classes = (num_class or 2) if objective in CLASSIFIERS else 0
        self.proba_type = "FP32"
        self.booster = booster
        self.raw = self._predict
        self.describe(booster.num_features(), booster.feature_names, int(model_param.get("num_target", 1)))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(x, validate_features=False))

    def unload(self) -> None:
        self.__dict__.pop("booster", None)
