"""What the keras runtime refuses to run: a `.keras` file storing Python code (a ``Lambda`` layer made from a
``lambda``) unless its manifest opts in with ``safe_mode = false``, on load and on push; and a model asking for
the JAX backend where JAX is not installed, which is not ready with the ``pip install`` line that fixes it.

These models are served in-process (the app over ASGI, the test process's Keras on PyTorch); the JAX one in
the worker process of its own that a backend other than the server's gets.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlgate.auth import Action, Caller, CallerKind, Policy
from mlgate.catalog.push import loaded_as, read_model_dir
from mlgate.errors import Forbidden, ModelLoadError
from mlgate.model.manifest import read_manifest
from mlgate.runtimes.keras import KerasRuntime
from tests.registry_helpers import push

os.environ.setdefault("KERAS_BACKEND", "torch")  # this test process's Keras runs on PyTorch, as the server's

pytestmark = pytest.mark.anyio

MANIFEST = 'name = "{name}"\nruntime = "keras"\nartifact = "model.keras"\n{extra}'
ROWS = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)


def _lambda_model(directory: Path, name: str, extra: str = "") -> Any:
    import keras

    inputs = keras.Input((3,), name="x")
    outputs = keras.layers.Lambda(lambda t: t * 3.0 + 1.0, name="affine")(inputs)
    model = keras.Model(inputs, outputs)
    directory.mkdir(parents=True)
    model.save(directory / "model.keras")
    (directory / "model.toml").write_text(MANIFEST.format(name=name, extra=extra))
    return model


def _infer(x: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}


def test_a_lambda_layer_is_refused_on_load_unless_the_manifest_opts_in(tmp_path: Path) -> None:
    _lambda_model(tmp_path / "lam", "lam")
    runtime = KerasRuntime(read_manifest(tmp_path / "lam"), tmp_path / "lam")
    with pytest.raises(ModelLoadError) as refused:
        runtime.load()
    message = refused.value.message
    assert "Lambda layer(s) 'affine'" in message and "safe_mode = false under [parameters]" in message
    assert not hasattr(runtime, "model")  # refused before Keras read the file


async def test_push_refuses_a_lambda_layer_in_safe_mode_and_serves_it_opted_in(
        app_client: Any, tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    model = _lambda_model(tmp_path / "safe", "lam")
    _lambda_model(tmp_path / "opted-in", "lam", '[parameters]\nsafe_mode = false\n')
    (tmp_path / "repo").mkdir()
    async with app_client(tmp_path / "repo", database_url=sqlite_url) as client:
        refused = await push(client, "lam", tmp_path / "safe")
        assert refused.status_code == 400, refused.text
        body = refused.json()
        assert body["field"] == "file" and "Lambda layer(s) 'affine'" in body["error"]
        assert "safe_mode = false" in body["error"]
        assert (await client.get("/api/v1/models/lam")).status_code == 404  # nothing recorded
        with caplog.at_level(logging.WARNING):
            assert (await push(client, "lam", tmp_path / "opted-in")).status_code == 201
            answer = await client.post("/v2/models/lam/infer", json=_infer(ROWS))
        assert answer.status_code == 200, answer.text
        got = np.asarray(answer.json()["outputs"][0]["data"], dtype=np.float32).reshape(4, 3)
        np.testing.assert_allclose(got, np.asarray(model.predict_on_batch(ROWS)), atol=1e-6)
    assert any("safe_mode = false" in record.getMessage() for record in caplog.records)


def test_an_opted_in_keras_file_needs_the_deploy_right_like_a_pickle(tmp_path: Path) -> None:
    _lambda_model(tmp_path / "opted-in", "lam", '[parameters]\nsafe_mode = false\n')
    manifest, _ = read_model_dir(tmp_path / "opted-in")
    predictor = Caller(CallerKind.KEY, "198.51.100.1", username="ann", key_prefix="p",
                       actions=frozenset({Action.PREDICT}), model_scopes=(("*",),))
    with pytest.raises(Forbidden, match="runs code when loaded"):
        Policy().check_artifact(predictor, "lam", loaded_as(manifest))
    safe = manifest.model_copy(update={"parameters": {}})
    Policy().check_artifact(predictor, "lam", loaded_as(safe))  # a plain .keras file runs no code


@pytest.mark.skipif(importlib.util.find_spec("jax") is not None, reason="jax is installed here")
async def test_the_jax_backend_without_jax_is_not_ready_with_the_pip_line(
        app_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import keras

    directory = tmp_path / "repo" / "on-jax"
    directory.mkdir(parents=True)
    inputs = keras.Input((3,), name="x")
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(directory / "model.keras")
    (directory / "model.toml").write_text(MANIFEST.format(name="on-jax", extra='[parameters]\nbackend = "jax"\n'))
    with caplog.at_level(logging.WARNING):
        async with app_client(tmp_path / "repo") as client:
            response = await client.get("/v2/models/on-jax/ready")
    assert response.json()["ready"] is False, response.text
    reasons = [r.getMessage() for r in caplog.records if "model failed to load" in r.getMessage()]
    assert any("pip install -c constraints.txt 'mlgate[jax]'" in r and "'jax'" in r for r in reasons), reasons
