"""The tensorflow runtime: a SavedModel trained on real data in this process (tf.saved_model.save), served by
its signature through tritonclient and V1 with the answers TensorFlow gives here. Two processes import
TensorFlow: this one and the server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from tests.processes import serve_process
from tests.runtimes.serving import assert_bad_inputs_refused, load_failures, triton_infer, triton_metadata, v1_predict


def _rows() -> np.ndarray:
    return StandardScaler().fit_transform(load_breast_cancer().data).astype(np.float32)


def _saved_model(directory: Path) -> Any:
    """Logistic regression on load_breast_cancer, trained with GradientTape (100 steps, ~98 % accuracy), saved
    with two signatures: serving_default (probabilities, label) and logits."""
    import tensorflow as tf

    class Classifier(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            self.w = tf.Variable(tf.zeros((30, 2)))
            self.b = tf.Variable(tf.zeros((2,)))

        @tf.function(input_signature=[tf.TensorSpec([None, 30], tf.float32, name="features")])
        def serve(self, features: Any) -> dict[str, Any]:
            logits = features @ self.w + self.b
            return {"probabilities": tf.nn.softmax(logits), "label": tf.argmax(logits, axis=1)}

        @tf.function(input_signature=[tf.TensorSpec([None, 30], tf.float32, name="features")])
        def logits(self, features: Any) -> dict[str, Any]:
            return {"logits": features @ self.w + self.b}

    model = Classifier()
    x, y = tf.constant(_rows()), tf.constant(load_breast_cancer().target)
    for _ in range(100):  # plain gradient descent (tf.optimizers is Keras', whose backend may be PyTorch here)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, x @ model.w + model.b))
        for variable, gradient in zip([model.w, model.b], tape.gradient(loss, [model.w, model.b]), strict=True):
            variable.assign_sub(0.5 * gradient)
    assert float(tf.reduce_mean(tf.cast(model.serve(x)["label"] == tf.cast(y, tf.int64), tf.float32))) > 0.95
    tf.saved_model.save(model, str(directory), signatures={"serving_default": model.serve, "logits": model.logits})
    return tf.saved_model.load(str(directory))


def _write(root: Path, name: str, extra: str = "") -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "model.toml").write_text(f'name = "{name}"\nruntime = "tensorflow"\nartifact = "saved"\n{extra}')
    return directory / "saved"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("tensorflow-repo")
    loaded = _saved_model(_write(root, "cancer"))
    import shutil

    shutil.copytree(root / "cancer" / "saved", _write(root, "cancer-logits", '[parameters]\nsignature = "logits"\n'))
    shutil.copytree(root / "cancer" / "saved", _write(root, "no-such-signature", '[parameters]\nsignature = "x"\n'))
    _write(root, "corrupt").mkdir()
    (root / "corrupt" / "saved" / "saved_model.pb").write_bytes(b"not a protobuf")
    shutil.copytree(root / "cancer" / "saved", _write(root, "on-cuda", 'device = "cuda:1"\n'))
    return root, loaded


@pytest.fixture(scope="module")
def server(repo: tuple[Path, Any], server_log: Path) -> Iterator[str]:
    with serve_process(repo[0], server_log, ready_timeout_s=180) as url:
        yield url


def test_serving_default_signature_is_the_metadata_and_answers(server: str, repo: tuple[Path, Any]) -> None:
    rows = _rows()[:30]
    expected = {k: v.numpy() for k, v in repo[1].signatures["serving_default"](features=rows).items()}
    metadata = triton_metadata(server, "cancer")
    assert metadata["platform"] == "tensorflow_savedmodel"
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 30]}]
    assert metadata["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [-1]},
                                   {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
    got = triton_infer(server, "cancer", {"features": rows}, ["label", "probabilities"])
    np.testing.assert_array_equal(got["label"], expected["label"])
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-5)
    v1 = v1_predict(server, "cancer", rows[:4].tolist())
    assert [p["label"] for p in v1] == expected["label"][:4].tolist()
    assert_bad_inputs_refused(server, "cancer", {"features": rows[:2]})


def test_a_signature_named_in_the_manifest(server: str, repo: tuple[Path, Any]) -> None:
    rows = _rows()[200:210]
    expected = repo[1].signatures["logits"](features=rows)["logits"].numpy()
    got = triton_infer(server, "cancer-logits", {"features": rows}, ["logits"], binary=False)["logits"]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_broken_models_are_not_ready_with_their_reason(server: str, server_log: Path) -> None:
    import tensorflow as tf

    failed = load_failures(server_log)
    assert "has no signature 'x' (it has: serving_default, logits)" in failed.pop("no-such-signature")
    assert "TensorFlow could not load saved" in failed.pop("corrupt")
    if len(tf.config.list_physical_devices("GPU")) < 2:
        assert "TensorFlow sees" in failed.pop("on-cuda")
    assert failed == {}
