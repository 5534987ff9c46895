"""The xgboost runtime: models trained on real data and saved with save_model (.ubj, .json) need only name,
runtime and artifact; answers equal XGBoost's scikit-learn wrappers in this process, via tritonclient and V1."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from tests.conftest import ClientFactory
from tests.processes import serve_process
from tests.runtimes.serving import assert_bad_inputs_refused, load_failures, triton_infer, triton_metadata, v1_predict


def _write(root: Path, name: str, artifact: str, extra: str = "") -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "model.toml").write_text(f'name = "{name}"\nruntime = "xgboost"\nartifact = "{artifact}"\n{extra}')
    return directory / artifact


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    root = tmp_path_factory.mktemp("xgboost-repo")
    cancer = load_breast_cancer()
    binary = xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(cancer.data, cancer.target)
    binary.save_model(_write(root, "cancer", "model.ubj"))
    iris_x, iris_y = load_iris(return_X_y=True, as_frame=True)  # named columns: the names are in the file
    multi = xgb.XGBClassifier(n_estimators=10, max_depth=2).fit(iris_x, iris_y)
    multi.save_model(_write(root, "iris", "model.json", "[parameters]\nthreads = 1\n"))
    diabetes = load_diabetes()
    regressor = xgb.XGBRegressor(n_estimators=20, max_depth=3).fit(diabetes.data, diabetes.target)
    regressor.save_model(_write(root, "diabetes", "model.ubj"))
    _write(root, "corrupt", "model.ubj").write_bytes(b"\x00\x01 not a model")
    regressor.save_model(_write(root, "on-cuda", "model.ubj", 'device = "cuda"\n'))
    return root, {"cancer": binary, "iris": multi, "diabetes": regressor}


@pytest.fixture(scope="module")
def server(models: tuple[Path, dict[str, object]], server_log: Path) -> Iterator[str]:
    with serve_process(models[0], server_log) as url:
        yield url


def test_binary_classifier_equals_xgbclassifier(server: str, models: tuple[Path, dict[str, object]]) -> None:
    model = models[1]["cancer"]
    assert isinstance(model, xgb.XGBClassifier)
    rows = load_breast_cancer().data[:40].astype(np.float32)
    metadata = triton_metadata(server, "cancer")
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 30]}]
    assert metadata["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                                   {"name": "predict_proba", "datatype": "FP32", "shape": [-1, 2]}]
    got = triton_infer(server, "cancer", {"input-0": rows}, ["predict", "predict_proba"])
    np.testing.assert_array_equal(got["predict"], model.predict(rows))
    np.testing.assert_allclose(got["predict_proba"], model.predict_proba(rows), atol=1e-5)
    v1 = v1_predict(server, "cancer", rows[:5].tolist())
    assert [p["predict"] for p in v1] == model.predict(rows[:5]).tolist()
    assert_bad_inputs_refused(server, "cancer", {"input-0": rows[:2]})


def test_multiclass_with_feature_names_from_the_file(server: str, models: tuple[Path, dict[str, object]]) -> None:
    import httpx

    model = models[1]["iris"]
    assert isinstance(model, xgb.XGBClassifier)
    frame = load_iris(as_frame=True).frame.iloc[::10, :4]
    rows = frame.to_numpy(dtype=np.float32)
    got = triton_infer(server, "iris", {"input-0": rows}, ["predict", "predict_proba"], binary=False)
    np.testing.assert_array_equal(got["predict"], model.predict(frame))
    np.testing.assert_allclose(got["predict_proba"], model.predict_proba(frame), atol=1e-5)
    # The column names read from the file reach the model's documentation (the playground's form).
    page = httpx.get(f"http://{server}/ui/models/iris", timeout=10).text
    assert "petal width (cm)" in page


def test_regressor_equals_xgbregressor(server: str, models: tuple[Path, dict[str, object]]) -> None:
    model = models[1]["diabetes"]
    assert isinstance(model, xgb.XGBRegressor)
    rows = load_diabetes().data[:30].astype(np.float32)
    got = triton_infer(server, "diabetes", {"input-0": rows}, ["predict"])
    np.testing.assert_allclose(got["predict"], model.predict(rows), rtol=1e-6)
    assert triton_metadata(server, "diabetes")["outputs"] == [
        {"name": "predict", "datatype": "FP32", "shape": [-1]}]
    np.testing.assert_allclose(v1_predict(server, "diabetes", rows[:4].tolist()), model.predict(rows[:4]), rtol=1e-6)


def test_corrupt_file_and_missing_cuda_leave_only_those_models_not_ready(server: str, server_log: Path) -> None:
    failed = load_failures(server_log)
    assert "XGBoost could not load model.ubj" in failed.pop("corrupt")
    if xgb.build_info().get("USE_CUDA"):
        failed.pop("on-cuda", None)  # a CUDA build: ready on a GPU machine, or not ready without one
    else:
        assert "built without CUDA" in failed.pop("on-cuda")
    assert failed == {}


@pytest.mark.anyio
async def test_missing_extra_names_the_pip_install_line(
    tmp_path: Path, app_client: ClientFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "xgboost", None)  # `import xgboost` now fails as if it were not installed
    directory = tmp_path / "any"
    directory.mkdir()
    (directory / "model.toml").write_text('name = "any"\nruntime = "xgboost"\nartifact = "model.ubj"\n')
    (directory / "model.ubj").write_bytes(b"{}")
    caplog.set_level(logging.ERROR)
    async with app_client(tmp_path) as client:
        response = await client.get("/v2/models/any/ready")
    assert response.json()["ready"] is False, response.text
    reasons = [r.getMessage() for r in caplog.records if "model failed to load" in r.getMessage()]
    assert any("pip install -c constraints.txt 'mlgate[xgboost]'" in r for r in reasons), reasons
