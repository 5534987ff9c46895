"""Example models trained from real data shipped with scikit-learn (nothing is downloaded).

- ``breast-cancer``: Pipeline(StandardScaler, LogisticRegression) on ``load_breast_cancer`` (569 rows,
  30 features, 2 classes), saved with joblib, runtime ``sklearn``.
- ``digits``: Pipeline(StandardScaler, LogisticRegression) on ``load_digits`` (1,797 8x8 images with
  values 0-16, flattened to 64 features, 10 classes), exported to ONNX by skl2onnx, runtime ``onnx``;
  its manifest declares the input (FP32 ``[-1, 64]``) with its image preprocessing (grayscale 8x8, dark
  ink 16, paper 0) for the playground; the outputs are read from the graph.

Each model directory gets its artifact and ``model.toml``; nothing here is committed as a binary.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import structlog

from mlgate.manifest import MANIFEST_FILE

__all__ = ["EXAMPLES", "build_examples", "ensure_examples"]

EXAMPLES = ("breast-cancer", "digits")

log = structlog.get_logger("mlgate.examples")

Progress = Callable[[str], None]


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _build_breast_cancer(dest: Path) -> None:
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
labels = {_toml_list([str(n) for n in data.target_names])}

[[inputs]]
name = "features"
datatype = "FP64"
shape = [-1, 30]
feature_names = {_toml_list([str(n) for n in data.feature_names])}

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
""")


def _build_digits(dest: Path) -> None:
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_digits()
    x = data.data.astype(np.float32)
    clf = LogisticRegression(max_iter=2000)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", clf)]).fit(x, data.target)
    onx = to_onnx(pipe, x[:1], options={id(clf): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "model.onnx").write_bytes(onx.SerializeToString())
    (dest / MANIFEST_FILE).write_text(f"""\
# Built by `mlgate examples build` from scikit-learn's load_digits (8x8 grayscale images, values 0-16).
# The outputs are read from the ONNX graph: label INT64 [-1] and probabilities FP32 [-1, 10].
name = "digits"
version = "1"
runtime = "onnx"
artifact = "model.onnx"
description = "Handwritten digit 0-9 from an 8x8 image flattened row by row to 64 values in 0-16."
labels = {_toml_list([str(n) for n in data.target_names])}

[[inputs]]
name = "X"
datatype = "FP32"
shape = [-1, 64]

# A picture becomes X as in load_digits: grayscale, 8x8 by area averaging, dark ink 16, white paper 0.
[inputs.image]
width = 8
height = 8
color = "grayscale"
value_range = [0.0, 16.0]
invert = true

[batching]
max_batch_size = 64
max_queue_delay_ms = 2.0
""")


_BUILDERS: dict[str, Callable[[Path], None]] = {
    "breast-cancer": _build_breast_cancer,
    "digits": _build_digits,
}


def build_examples(root: Path, *, force: bool = False, progress: Progress | None = None) -> list[Path]:
    """Train and write every example model under ``root`` (one directory each); returns the directories.

    Existing complete model directories are kept unless ``force``. A build writes to a temporary
    directory first and renames it into place, so an interrupted build never leaves a half model.
    """
    root.mkdir(parents=True, exist_ok=True)
    built = []
    for name, builder in _BUILDERS.items():
        dest = root / name
        if (dest / MANIFEST_FILE).exists() and not force:
            if progress:
                progress(f"{name}: already built in {dest}")
            built.append(dest)
            continue
        if progress:
            progress(f"{name}: training on real data ...")
        tmp = root / f".{name}.building"
        shutil.rmtree(tmp, ignore_errors=True)
        builder(tmp)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        if progress:
            progress(f"{name}: written to {dest}")
        built.append(dest)
    return built


def ensure_examples(root: Path) -> None:
    """Build the examples into ``root`` unless they are all there already."""
    if all((root / name / MANIFEST_FILE).exists() for name in EXAMPLES):
        return
    log.info("building example models", directory=str(root))
    build_examples(root, progress=lambda line: log.info(line))
