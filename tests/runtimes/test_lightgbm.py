"""The lightgbm runtime: models trained on real data and saved in LightGBM's text format need only name,
runtime and artifact; answers equal LightGBM's scikit-learn wrappers in this process, via tritonclient and V1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from tests.processes import serve_process
from tests.runtimes.serving import assert_bad_inputs_refused, load_failures, triton_infer, triton_metadata, v1_predict


def _write(root: Path, name: str, extra: str = "") -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "model.toml").write_text(f'name = "{name}"\nruntime = "lightgbm"\nartifact = "model.txt"\n{extra}')
    return directory / "model.txt"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    root = tmp_path_factory.mktemp("lightgbm-repo")
    cancer = load_breast_cancer()
    binary = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(cancer.data, cancer.target)
    binary.booster_.save_model(_write(root, "cancer"))
    iris_x, iris_y = load_iris(return_X_y=True, as_frame=True)
    multi = lgb.LGBMClassifier(n_estimators=10, num_leaves=5, min_child_samples=5, verbose=-1).fit(iris_x, iris_y)
    multi.booster_.save_model(_write(root, "iris", "[parameters]\nthreads = 1\n"))
    diabetes = load_diabetes()
    regressor = lgb.LGBMRegressor(n_estimators=20, num_leaves=7, verbose=-1).fit(diabetes.data, diabetes.target)
    regressor.booster_.save_model(_write(root, "diabetes"))
    _write(root, "corrupt").write_text("tree\nversion=v4\nnot a model")
    regressor.booster_.save_model(_write(root, "on-cuda", 'device = "cuda"\n'))
    return root, {"cancer": binary, "iris": multi, "diabetes": regressor}


@pytest.fixture(scope="module")
def server(models: tuple[Path, dict[str, object]], server_log: Path) -> Iterator[str]:
    with serve_process(models[0], server_log) as url:
        yield url


def test_binary_classifier_equals_lgbmclassifier(server: str, models: tuple[Path, dict[str, object]]) -> None:
    model = models[1]["cancer"]
    assert isinstance(model, lgb.LGBMClassifier)
    rows = load_breast_cancer().data[:40].astype(np.float32)
    metadata = triton_metadata(server, "cancer")
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 30]}]
    assert metadata["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                                   {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}]
    got = triton_infer(server, "cancer", {"input-0": rows}, ["predict", "predict_proba"])
    np.testing.assert_array_equal(got["predict"], model.predict(rows))
    np.testing.assert_allclose(got["predict_proba"], model.predict_proba(rows), atol=1e-5)
    v1 = v1_predict(server, "cancer", rows[:5].tolist())
    assert [p["predict"] for p in v1] == model.predict(rows[:5]).tolist()
    assert_bad_inputs_refused(server, "cancer", {"input-0": rows[:2]})


def test_multiclass_with_feature_names_from_the_file(server: str, models: tuple[Path, dict[str, object]]) -> None:
    model = models[1]["iris"]
    assert isinstance(model, lgb.LGBMClassifier)
    frame = load_iris(as_frame=True).frame.iloc[::10, :4]
    rows = frame.to_numpy(dtype=np.float32)
    metadata = triton_metadata(server, "iris")
    assert metadata["outputs"][1] == {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}
    got = triton_infer(server, "iris", {"input-0": rows}, ["predict", "predict_proba"], binary=False)
    np.testing.assert_array_equal(got["predict"], model.predict(frame))
    np.testing.assert_allclose(got["predict_proba"], model.predict_proba(frame), atol=1e-5)


def test_regressor_equals_lgbmregressor(server: str, models: tuple[Path, dict[str, object]]) -> None:
    model = models[1]["diabetes"]
    assert isinstance(model, lgb.LGBMRegressor)
    rows = load_diabetes().data[:30].astype(np.float32)
    got = triton_infer(server, "diabetes", {"input-0": rows}, ["predict"])
    np.testing.assert_allclose(got["predict"], model.predict(rows), rtol=1e-9)
    np.testing.assert_allclose(v1_predict(server, "diabetes", rows[:4].tolist()), model.predict(rows[:4]), rtol=1e-9)


def test_corrupt_file_and_cuda_leave_only_those_models_not_ready(server: str, server_log: Path) -> None:
    failed = load_failures(server_log)
    assert "LightGBM could not load model.txt" in failed.pop("corrupt")
    assert "the lightgbm runtime runs on the CPU only" in failed.pop("on-cuda")
    assert failed == {}
