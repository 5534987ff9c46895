"""The bundled examples as `mlgate serve` builds them: a public demo, open to anonymous callers, unthrottled."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer

from mlgate.model.examples import build_examples
from tests.conftest import ClientFactory

pytestmark = pytest.mark.anyio


async def test_demo_examples_are_open_and_not_rate_limited(tmp_path: Path, app_client: ClientFactory) -> None:
    build_examples(tmp_path / "open", names=["breast-cancer"])
    build_examples(tmp_path / "closed", names=["breast-cancer"], open_demo=False)
    row = load_breast_cancer().data[0].tolist()
    body = {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP64", "data": row}]}
    # anonymous_models=[]: only what the manifests open is open; the anonymous tier allows 2 requests an hour
    # (an hour, not a minute: a slow run cannot straddle a window boundary).
    tiers = {"anonymous": {"requests": "2/hour"}}
    async with app_client(tmp_path / "open", anonymous_models=[], rate_limit_tiers=tiers) as client:
        for _ in range(5):
            response = await client.post("/v2/models/breast-cancer/infer", json=body)
            assert response.status_code == 200, response.text
            assert response.json()["outputs"][0]["data"] == [0]
    async with app_client(tmp_path / "closed", anonymous_models=[], rate_limit_tiers=tiers) as client:
        response = await client.post("/v2/models/breast-cancer/infer", json=body)
        assert response.status_code == 401


def test_an_older_build_is_rebuilt(tmp_path: Path) -> None:
    (model_dir,) = build_examples(tmp_path, names=["breast-cancer"])
    (model_dir / ".example-revision").write_text("1")
    lines: list[str] = []
    build_examples(tmp_path, names=["breast-cancer"], progress=lines.append)
    assert any("building" in line for line in lines), lines
    assert "[access]" in (model_dir / "model.toml").read_text()
