"""The sklearn runtime's safe format: ``.skops`` files load without running code; untrusted types are refused."""

from __future__ import annotations

import logging
import operator
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from tests.conftest import ClientFactory

pytestmark = pytest.mark.anyio

MANIFEST = '''name = "{name}"
runtime = "sklearn"
artifact = "model.skops"
{extra}
[[inputs]]
name = "features"
datatype = "FP64"
shape = [-1, 30]
'''


def _write(root: Path, name: str, model: object, extra: str = "") -> None:
    directory = root / name
    directory.mkdir()
    skops.io.dump(model, directory / "model.skops")
    (directory / "model.toml").write_text(MANIFEST.format(name=name, extra=extra))


def _infer_body(rows: np.ndarray) -> dict[str, object]:
    return {"inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP64",
                        "data": rows.ravel().tolist()}]}


async def test_skops_model_serves_the_same_answers(tmp_path: Path, app_client: ClientFactory) -> None:
    data = load_breast_cancer()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(data.data, data.target)
    _write(tmp_path, "cancer-skops", model)
    rows = data.data[:25]
    async with app_client(tmp_path) as client:
        response = await client.post("/v2/models/cancer-skops/infer", json=_infer_body(rows))
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["predict"]["data"] == model.predict(rows).tolist()
    np.testing.assert_array_equal(np.reshape(outputs["predict_proba"]["data"], (25, 2)), model.predict_proba(rows))


async def test_untrusted_types_are_refused_unless_the_manifest_trusts_them(
    tmp_path: Path, app_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    data = load_breast_cancer()
    model = make_pipeline(FunctionTransformer(operator.neg), LogisticRegression(max_iter=3000))
    model.fit(data.data, data.target)
    _write(tmp_path, "refused", model)
    _write(tmp_path, "trusted", model, extra='[parameters]\ntrusted_types = ["_operator.neg"]\n')
    caplog.set_level(logging.ERROR)
    async with app_client(tmp_path) as client:
        refused = await client.post("/v2/models/refused/infer", json=_infer_body(data.data[:2]))
        trusted = await client.post("/v2/models/trusted/infer", json=_infer_body(data.data[:2]))
    assert refused.status_code == 503 and "_operator.neg" not in refused.text
    assert any("_operator.neg" in r.getMessage() and "trusted_types" in r.getMessage() for r in caplog.records)
    assert trusted.status_code == 200
    assert trusted.json()["outputs"][0]["data"] == model.predict(data.data[:2]).tolist()
