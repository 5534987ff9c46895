"""``breast-cancer``: Pipeline(StandardScaler, LogisticRegression) on ``load_breast_cancer`` (569 rows, 30
features, 2 classes), saved with joblib, runtime ``sklearn``."""

from __future__ import annotations

from pathlib import Path

from mlgate.model.examples.common import DEMO_ACCESS, toml_list, toml_numbers
from mlgate.model.manifest import MANIFEST_FILE

__all__ = ["build"]


def build(dest: Path) -> None:
    """Train the example into ``dest`` (see the module)."""
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])
    pipe.fit(data.data, data.target)
    dest.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipe, dest / "model.joblib")
    (dest / MANIFEST_FILE).write_text(f"""\
# Built by `mlgate examples build` from scikit-learn's load_breast_cancer (Wisconsin diagnostic data).
name = "breast-cancer"
version = "1"
runtime = "sklearn"
artifact = "model.joblib"
description = "Malignant (0) or benign (1) from 30 measurements of a breast mass; StandardScaler + LogisticRegression."
labels = {toml_list([str(n) for n in data.target_names])}

[[inputs]]
name = "features"
datatype = "FP64"
shape = [-1, 30]
feature_names = {toml_list([str(n) for n in data.feature_names])}
# The first row of load_breast_cancer (a malignant mass): the playground's "Fill with the example".
example = {toml_numbers(data.data[0])}

[[outputs]]
name = "predict"
datatype = "INT64"
shape = [-1]

[[outputs]]
name = "predict_proba"
datatype = "FP64"
shape = [-1, 2]

[batching]
max_batch_size = 64
max_queue_delay_ms = 2.0
""" + DEMO_ACCESS)
