"""``digits``: Pipeline(StandardScaler, LogisticRegression) on ``load_digits`` (1,797 8x8 images with values
0-16, flattened to 64 features, 10 classes), exported to ONNX by skl2onnx, runtime ``onnx``; its manifest
declares the input (FP32 ``[-1, 64]``) with its image preprocessing (grayscale 8x8, dark ink 16, paper 0)
for the playground; the outputs are read from the graph."""

from __future__ import annotations

from pathlib import Path

from mlgate.model.examples.common import DEMO_ACCESS, toml_list, toml_numbers
from mlgate.model.manifest import MANIFEST_FILE

__all__ = ["build"]


def build(dest: Path) -> None:
    """Train the example into ``dest`` (see the module)."""
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
labels = {toml_list([str(n) for n in data.target_names])}

[[inputs]]
name = "X"
datatype = "FP32"
shape = [-1, 64]
# The first image of load_digits (a 0), row by row: the playground's "Fill with the example".
example = {toml_numbers(data.data[0])}

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
""" + DEMO_ACCESS)
