"""The plain FastAPI peer of ``benchmarks/digits_cnn.py``: the same ``.keras`` file, one ``model.predict`` per
request (a sync endpoint, which FastAPI runs in its threadpool), as someone would write it by hand.

Run: ``DIGITS_CNN=path/model.keras uvicorn fastapi_keras:app --app-dir benchmarks/peers --port 8001``.
``POST /predict`` takes ``{"image": [64 floats]}`` (8x8, 0-1, row by row) and answers ``{"digit", "probabilities"}``;
``POST /noop`` parses the same body and answers a constant (the HTTP floor, to show the client keeps up).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402

model = keras.saving.load_model(os.environ["DIGITS_CNN"])
app = FastAPI()


class Image(BaseModel):
    image: list[float]


@app.post("/predict")
def predict(x: Image) -> dict[str, object]:
    probabilities = model.predict(np.asarray(x.image, dtype=np.float32).reshape(1, 8, 8, 1), verbose=0)[0]
    return {"digit": int(np.argmax(probabilities)), "probabilities": probabilities.tolist()}


@app.post("/noop")
async def noop(x: Image) -> dict[str, object]:
    return {"digit": 0}
