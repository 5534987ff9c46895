"""The keras runtime: `.keras` files served as saved, signature read from the model, through tritonclient and V1.

One real `mlgate serve` process serves every model of this module: the digits-cnn example, a functional model
with two inputs and two outputs, a model with a custom layer from a module of its directory, a corrupt file,
and a model saved on the TensorFlow backend (served on PyTorch, and on TensorFlow in a worker process of its
own). TensorFlow is imported by two processes only: the one that saves that model and that worker.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlgate.model.examples import build_examples
from mlgate.model.examples.digits_cnn import held_out_split
from tests.processes import serve_process
from tests.runtimes.serving import assert_bad_inputs_refused, load_failures, triton_infer, triton_metadata, v1_predict

os.environ.setdefault("KERAS_BACKEND", "torch")  # this test process's Keras runs on PyTorch, as the server's

CUSTOM_LAYER = '''
import keras


@keras.saving.register_keras_serializable(package="tests")
class Doubler(keras.layers.Layer):
    """Multiplies its input by a learned-nothing constant 2."""

    def call(self, x):
        return x * 2.0
'''

# Saves a small model on the TensorFlow backend and writes its answers on fixed rows (run in a subprocess).
SAVE_ON_TENSORFLOW = '''
import os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
import keras, numpy as np
keras.utils.set_random_seed(1)
inputs = keras.Input((6,), name="features")
hidden = keras.layers.Dense(16, activation="tanh")(inputs)
outputs = keras.layers.Dense(3, activation="softmax", name="scores")(hidden)
model = keras.Model(inputs, outputs)
assert keras.backend.backend() == "tensorflow"
model.save(sys.argv[1])
rows = np.linspace(-1, 1, 5 * 6, dtype="float32").reshape(5, 6)
np.save(sys.argv[2], model.predict_on_batch(rows))
'''

MANIFEST = '''name = "{name}"
runtime = "keras"
artifact = "model.keras"
{extra}
'''


def _keras() -> Any:
    import keras

    assert keras.backend.backend() == "torch"
    return keras


def _write(root: Path, name: str, model: Any = None, extra: str = "") -> Path:
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    if model is not None:
        model.save(directory / "model.keras")
    (directory / "model.toml").write_text(MANIFEST.format(name=name, extra=extra))
    return directory


def _two_in_two_out() -> Any:
    keras = _keras()
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    total = keras.layers.Dense(1, name="total")(joined)
    probs = keras.layers.Dense(4, activation="softmax", name="probs")(joined)
    return keras.Model([a, b], [total, probs])


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("keras-repo")
    build_examples(root, names=["digits-cnn"], open_demo=False)
    _write(root, "two-in-two-out", _two_in_two_out())
    # A custom layer from a module of the model directory (this runs the author's code, as the docs warn).
    custom_dir = root / "custom-layer"
    custom_dir.mkdir()
    (custom_dir / "layers.py").write_text(CUSTOM_LAYER)
    from mlgate.runtimes.support import import_file

    layers = import_file(custom_dir / "layers.py", "tests_keras_custom_layers")
    keras = _keras()
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, name="y")(layers.Doubler()(inputs)))
    _write(root, "custom-layer", model, extra='[parameters]\ncustom_objects = "layers.py"')
    # Not a Keras file: that model is not ready, the others load.
    _write(root, "corrupt", extra="").joinpath("model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    # Saved on TensorFlow, in a process of its own; served on PyTorch and, asked for, on TensorFlow.
    saved = root / "tf-saved"
    saved.mkdir()
    subprocess.run([sys.executable, "-c", SAVE_ON_TENSORFLOW, str(saved / "model.keras"), str(root / "tf-answers.npy")],
                   check=True, env={**os.environ, "KERAS_BACKEND": "tensorflow"}, timeout=300)
    _write(root, "tf-saved")
    on_tf = _write(root, "tf-backend", extra='[parameters]\nbackend = "tensorflow"')
    (on_tf / "model.keras").write_bytes((saved / "model.keras").read_bytes())
    return root


@pytest.fixture(scope="module")
def server(repo: Path, server_log: Path) -> Iterator[str]:
    with serve_process(repo, server_log, {"KERAS_BACKEND": "torch"}, ready_timeout_s=180) as url:
        yield url
    failed = load_failures(server_log)
    assert list(failed) == ["corrupt"], failed
    assert "Keras could not load model.keras" in failed["corrupt"]


def test_digits_cnn_on_20_real_digits_equals_in_process_keras(server: str, repo: Path) -> None:
    _, x_test, _, y_test = held_out_split()
    images = np.ascontiguousarray(x_test[:20])
    model = _keras().saving.load_model(repo / "digits-cnn" / "model.keras")
    expected = np.asarray(model.predict_on_batch(images))
    metadata = triton_metadata(server, "digits-cnn")
    assert metadata["platform"] == "keras"
    assert metadata["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 8, 8, 1]}]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    got = triton_infer(server, "digits-cnn", {"image": images}, ["probabilities"])["probabilities"]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    assert np.mean(got.argmax(axis=1) == y_test[:20]) >= 0.9  # it does read digits
    v1 = np.asarray(v1_predict(server, "digits-cnn", images[:3].tolist()))
    np.testing.assert_allclose(v1, expected[:3], atol=1e-5)


def _png(values: np.ndarray, size: int = 64) -> bytes:
    """A load_digits image (8x8, 0-1, ink high) as a PNG of dark ink on white, ``size`` pixels wide."""
    from PIL import Image

    gray = np.round(255 - values.reshape(8, 8) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(gray).resize((size, size), Image.Resampling.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


def test_digits_cnn_recognises_png_files_sent_as_v2_bytes(server: str, repo: Path) -> None:
    """Real digits as PNG files, one per row: in binary (tritonclient) and base64 in JSON, each made into the
    8x8 tensor as the manifest's [inputs.image] says; the answers are in-process Keras' on that tensor."""
    import httpx
    from PIL import Image

    from mlgate.codecs.images import image_to_tensor
    from mlgate.model.manifest import read_manifest

    _, x_test, _, y_test = held_out_split()
    pngs = [_png(x_test[i]) for i in range(20)]
    spec = read_manifest(repo / "digits-cnn").inputs[0].image
    assert spec is not None
    tensors = np.stack([image_to_tensor(np.asarray(Image.open(io.BytesIO(p)).convert("RGBA")), spec)
                        for p in pngs]).astype(np.float32).reshape(20, 8, 8, 1)
    np.testing.assert_allclose(tensors, x_test[:20], atol=0.5 / 255 + 1e-6)  # the digits, to 8 bits
    model = _keras().saving.load_model(repo / "digits-cnn" / "model.keras")
    expected = np.asarray(model.predict_on_batch(tensors))
    got = triton_infer(server, "digits-cnn", {"image": np.array(pngs, dtype=object)}, ["probabilities"])
    np.testing.assert_allclose(got["probabilities"], expected, atol=1e-5)
    assert np.mean(expected.argmax(axis=1) == y_test[:20]) >= 0.9  # it does read the pictures
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                        "data": [base64.b64encode(p).decode() for p in pngs[:2]]}]}
    answer = httpx.post(f"http://{server}/v2/models/digits-cnn/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    probabilities = np.asarray(answer.json()["outputs"][0]["data"]).reshape(2, 10)
    np.testing.assert_allclose(probabilities, expected[:2], atol=1e-5)
    body["inputs"][0]["data"] = ["bm90IGFuIGltYWdl", base64.b64encode(pngs[0]).decode()]  # "not an image"
    refused = httpx.post(f"http://{server}/v2/models/digits-cnn/infer", json=body, timeout=30)
    assert refused.status_code == 400 and refused.json()["field"] == "inputs[0].data", refused.text
    assert "inputs[0].data[0]: not a readable image" in refused.json()["error"]


def test_two_inputs_two_outputs_read_from_the_model(server: str, repo: Path) -> None:
    model = _keras().saving.load_model(repo / "two-in-two-out" / "model.keras")
    a = np.arange(15, dtype=np.float32).reshape(5, 3) / 10
    b = np.arange(10, dtype=np.float32).reshape(5, 2) - 4
    total, probs = (np.asarray(t) for t in model.predict_on_batch([a, b]))
    metadata = triton_metadata(server, "two-in-two-out")
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == [
        ("a", "FP32", [-1, 3]), ("b", "FP32", [-1, 2])]
    assert [(o["name"], o["shape"]) for o in metadata["outputs"]] == [("total", [-1, 1]), ("probs", [-1, 4])]
    got = triton_infer(server, "two-in-two-out", {"a": a, "b": b}, ["total", "probs"], binary=False)
    np.testing.assert_allclose(got["total"], total, atol=1e-5)
    np.testing.assert_allclose(got["probs"], probs, atol=1e-5)
    rows = v1_predict(server, "two-in-two-out", [{"a": a[i].tolist(), "b": b[i].tolist()} for i in range(5)])
    np.testing.assert_allclose([r["total"] for r in rows], total, atol=1e-5)
    np.testing.assert_allclose([r["probs"] for r in rows], probs, atol=1e-5)
    assert_bad_inputs_refused(server, "two-in-two-out", {"a": a, "b": b})


def test_custom_layer_from_the_model_directory(server: str, repo: Path) -> None:
    import tests_keras_custom_layers  # noqa: F401 - registered by the fixture; the reference load needs it

    model = _keras().saving.load_model(repo / "custom-layer" / "model.keras")
    x = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    got = triton_infer(server, "custom-layer", {"x": x}, ["y"])["y"]
    np.testing.assert_allclose(got, np.asarray(model.predict_on_batch(x)), atol=1e-5)


def test_saved_on_tensorflow_served_on_pytorch_and_on_tensorflow(server: str, repo: Path) -> None:
    rows = np.linspace(-1, 1, 5 * 6, dtype=np.float32).reshape(5, 6)
    expected = np.load(repo / "tf-answers.npy")  # TensorFlow's own answers, in the process that saved it
    for name in ("tf-saved", "tf-backend"):
        got = triton_infer(server, name, {"features": rows}, ["scores"])["scores"]
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=name)
    assert_bad_inputs_refused(server, "digits-cnn", {"image": np.zeros((2, 8, 8, 1), np.float32)})


def test_the_other_backend_runs_in_its_own_worker_process(server: str, server_log: Path) -> None:
    import httpx

    assert httpx.get(f"http://{server}/v2/models/tf-backend/ready", timeout=10).status_code == 200
    moved = [json.loads(line) for line in server_log.read_text().splitlines()
             if '"model runs in its own worker process"' in line]
    assert [(m["model"], m["reason"]) for m in moved] == [
        ("tf-backend", "Keras backend 'tensorflow', the server process's is 'torch'")]
