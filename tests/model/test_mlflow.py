"""MLflow model directories as `mlflow.sklearn.save_model` / `mlflow.onnx.save_model` write them: served from
the repository folder and pushed to the registry without a model.toml; the MLmodel signature is the schema."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlgate.errors import ModelLoadError
from mlgate.model.mlflow import read_mlmodel
from tests.registry_helpers import API, push

pytestmark = pytest.mark.anyio


def _python_model() -> type:
    import mlflow.pyfunc

    class DoubledSumModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # noqa: ANN001
            return np.asarray(model_input).sum(axis=1) * 2

    return DoubledSumModel


@pytest.fixture(scope="module")
def mlflow_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A folder with MLflow-saved models: breast-cancer (skops, tensor signature), a pandas column
    signature variant, a cloudpickle one, and digits as ONNX."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mlflow.onnx
        import mlflow.pyfunc
        import mlflow.sklearn
        import pandas as pd
        from mlflow.models import infer_signature
        from skl2onnx import to_onnx

        root = tmp_path_factory.mktemp("mlflow")
        data = load_breast_cancer()
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(data.data, data.target)
        mlflow.sklearn.save_model(model, root / "bc", signature=infer_signature(data.data, model.predict(data.data)))
        frame = pd.DataFrame(data.data, columns=[c.replace(" ", "_") for c in data.feature_names])
        by_column = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(frame, data.target)
        # The first save is exactly the default; the others skip MLflow's slow requirements inference.
        mlflow.sklearn.save_model(by_column, root / "bc-columns", pip_requirements=["scikit-learn"],
                                  signature=infer_signature(frame, by_column.predict(frame)))
        mlflow.sklearn.save_model(model, root / "bc-cloudpickle", serialization_format="cloudpickle",
                                  pip_requirements=["scikit-learn"])
        digits = load_digits()
        x = digits.data.astype(np.float32)
        clf = LogisticRegression(max_iter=300).fit(x / 16, digits.target)
        onnx_model = to_onnx(clf, x[:1], options={"zipmap": False})
        mlflow.onnx.save_model(onnx_model, root / "digits-onnx", pip_requirements=["onnxruntime"])
        rows = np.zeros((2, 3), dtype=np.float32)
        mlflow.pyfunc.save_model(root / "doubled-sum", python_model=_python_model()(), pip_requirements=["mlflow"],
                                 signature=infer_signature(rows, rows.sum(axis=1)))
    return root, model


async def test_mlflow_sklearn_model_served_from_its_directory(
    app_client: Callable[..., Any], mlflow_repo: tuple[Path, Any]
) -> None:
    root, model = mlflow_repo
    assert not (root / "bc" / "model.toml").exists() and (root / "bc" / "model.skops").exists()
    rows = load_breast_cancer().data[:25]
    async with app_client(root) as client:
        meta = (await client.get("/v2/models/bc")).json()
        assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 30]}]
        assert meta["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
        body = {"inputs": [{"name": "input-0", "shape": [25, 30], "datatype": "FP64", "data": rows.tolist()}]}
        response = await client.post("/v2/models/bc/infer", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == model.predict(rows).tolist()

        columns = (await client.get("/v2/models/bc-columns")).json()
        assert columns["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 30]}]
        v1 = await client.post("/v1/models/bc-columns:predict", json={"instances": rows.tolist()})
        assert [p for p in v1.json()["predictions"]] == model.predict(rows).tolist()

        pickled = await client.post("/v1/models/bc-cloudpickle:predict", json={"instances": rows.tolist()})
        assert [p["predict"] for p in pickled.json()["predictions"]] == model.predict(rows).tolist()

        digits = load_digits().data[:5].astype(np.float32) / 16
        onnx_meta = (await client.get("/v2/models/digits-onnx")).json()
        name = onnx_meta["inputs"][0]["name"]
        onnx = await client.post("/v2/models/digits-onnx/infer", json={
            "inputs": [{"name": name, "shape": [5, 64], "datatype": "FP32", "data": digits.tolist()}]})
        assert onnx.status_code == 200, onnx.text
        assert onnx.json()["outputs"][0]["data"] == load_digits().target[:5].tolist()

        custom = await client.post("/v2/models/doubled-sum/infer", json={
            "inputs": [{"name": "input-0", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]})
        assert custom.status_code == 200, custom.text
        assert custom.json()["outputs"][0] == {"name": "predict", "datatype": "FP32", "shape": [2],
                                               "data": [12.0, 30.0]}


async def test_mlflow_directory_pushed_to_the_registry(app_client: Callable[..., Any], tmp_path: Path,
                                                      mlflow_repo: tuple[Path, Any], database_url: str) -> None:
    root, model = mlflow_repo
    (tmp_path / "repo").mkdir()
    rows = load_breast_cancer().data[:5]
    async with app_client(tmp_path / "repo", database_url=database_url) as client:
        pushed = await push(client, "cancer", root / "bc")
        assert pushed.status_code == 201, pushed.text
        assert pushed.json()["version"] == "1" and pushed.json()["manifest"]["runtime"] == "sklearn"
        assert (await push(client, "cancer", root / "bc")).json()["version"] == "2"
        response = await client.post("/v1/models/cancer:predict", json={"instances": rows.tolist()})
        assert response.headers["x-model-version"] == "2"
        assert response.json()["predictions"] == model.predict(rows).tolist()
        shown = (await client.get(f"{API}/models/cancer/versions/1")).json()
        assert shown["manifest"]["parameters"]["serialization_format"] == "skops"


def test_unsupported_mlflow_flavors_are_refused_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: my.module\n")
    with pytest.raises(ModelLoadError, match="signature of one input and one output"):
        read_mlmodel(tmp_path)
    (tmp_path / "MLmodel").write_text("flavors:\n  h2o:\n    data: model.h2o\n")
    with pytest.raises(ModelLoadError, match="h2o"):
        read_mlmodel(tmp_path)
    (tmp_path / "MLmodel").write_text("flavors: [oops\n")
    with pytest.raises(ModelLoadError, match="cannot read"):
        read_mlmodel(tmp_path)
