"""``digits-cnn``: a small Keras convolutional network on scikit-learn's ``load_digits`` (1,797 8x8 grayscale
images, values 0-16, 10 classes), runtime ``keras`` on the PyTorch backend.

The images are scaled to 0-1 and kept as ``[8, 8, 1]`` (height, width, channel). Trained on 80 % of the
digits (a stratified split, seed 0) for 12 epochs with Adam: about 97-98 % accuracy on the other 20 %,
which ``build`` checks (at least 95 %) and writes into the manifest's description. About 15 s on 2 CPU cores.
The manifest declares the input for its image preprocessing (the playground's drawing pad); the output
``probabilities`` FP32 ``[-1, 10]`` is read from the model.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

from mlgate.model.examples.common import DEMO_ACCESS, toml_list, toml_numbers
from mlgate.model.manifest import MANIFEST_FILE

__all__ = ["MIN_ACCURACY", "build", "held_out_split"]

MIN_ACCURACY = 0.95
SEED = 0


def held_out_split() -> tuple[Any, Any, Any, Any]:
    """``(x_train, x_test, y_train, y_test)``: load_digits as FP32 ``[n, 8, 8, 1]`` in 0-1 and INT64 labels,
    80/20, stratified, seed 0 (the split the accuracy is measured on)."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    split: list[Any] = train_test_split(x, data.target, test_size=0.2, random_state=SEED, stratify=data.target)
    return split[0], split[1], split[2], split[3]


def build(dest: Path) -> None:
    """Train the example into ``dest`` (see the module)."""
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import numpy as np
    import torch

    x_train, x_test, y_train, y_test = held_out_split()
    # Seeds: keras draws its initial weights from Python's random (keras.utils.set_random_seed would
    # import TensorFlow when it is installed, ~5 s for nothing).
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(h)
    model = keras.Model(inputs, outputs, name="digits_cnn")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=12, batch_size=64, verbose=0)
    predicted = np.argmax(model.predict_on_batch(x_test), axis=1)
    accuracy = float(np.mean(predicted == y_test))
    if accuracy < MIN_ACCURACY:
        raise RuntimeError(f"digits-cnn reached {accuracy:.1%} on the held-out digits, under {MIN_ACCURACY:.0%}")
    dest.mkdir(parents=True, exist_ok=True)
    model.save(dest / "model.keras")
    (dest / MANIFEST_FILE).write_text(f"""\
# Built by `mlgate examples build`: a Keras CNN trained on scikit-learn's load_digits (8x8 grayscale, 0-1).
# The output (probabilities FP32 [-1, 10]) is read from the model. Needs the keras extra.
name = "digits-cnn"
version = "1"
runtime = "keras"
artifact = "model.keras"
description = "Handwritten digit 0-9 from an 8x8 grayscale image (0-1); a Keras CNN, {accuracy:.1%} on held-out digits."
labels = {toml_list([str(n) for n in range(10)])}

[[inputs]]
name = "image"
datatype = "FP32"
shape = [-1, 8, 8, 1]
# The first held-out image (8 rows of 8 pixels of 1 channel): the playground's "Fill with the example".
example = {toml_numbers(x_test[0])}

# A picture becomes the image as in load_digits: grayscale, 8x8 by area averaging, dark ink 1, white paper 0.
[inputs.image]
width = 8
height = 8
color = "grayscale"
value_range = [0.0, 1.0]
invert = true

[parameters]
backend = "torch"

[batching]
max_batch_size = 64
max_queue_delay_ms = 2.0
""" + DEMO_ACCESS)
