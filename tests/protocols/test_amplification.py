"""Response amplification: a request cannot make the server encode more than the model's outputs once each.

Real app, real breast-cancer model (outputs ``predict`` and ``predict_proba``), real HTTP (ASGI).
"""

from __future__ import annotations

import httpx
import pytest

from tests.protocols.test_bad_input import V2, assert_serves, check_error, tensor

pytestmark = pytest.mark.anyio


async def test_repeated_output_name_is_refused(client: httpx.AsyncClient) -> None:
    body = {"inputs": [tensor()], "outputs": [{"name": "predict_proba"}] * 2000}
    resp = await client.post(V2, json=body)
    check_error(resp, 400, "invalid_input", "outputs[1].name", "'predict_proba'", "twice")
    await assert_serves(client)


async def test_repeated_output_with_other_parameters_is_refused(client: httpx.AsyncClient) -> None:
    body = {"inputs": [tensor()], "outputs": [{"name": "predict_proba"},
                                              {"name": "predict_proba", "parameters": {"classification": 1}}]}
    resp = await client.post(V2, json=body)
    check_error(resp, 400, "invalid_input", "outputs[1].name", "twice")


async def test_each_output_once_still_serves(client: httpx.AsyncClient) -> None:
    body = {"inputs": [tensor()], "outputs": [{"name": "predict_proba"}, {"name": "predict"}]}
    resp = await client.post(V2, json=body)
    assert resp.status_code == 200, resp.text
    assert [o["name"] for o in resp.json()["outputs"]] == ["predict_proba", "predict"]
