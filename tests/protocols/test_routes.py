"""One route per inference operation, each behind the one security entry point (``protocols.security.admit``).

Structural: every POST route under the inference prefixes is one of the app's ``INFERENCE_ROUTES``, each
inference path matches exactly one route, and the edge's fast path serves those same routes. Behavioural:
every inference route refuses an unknown caller (401) and a caller without the right on the model (403)
BEFORE it reads the body: an undecodable body must not get a 400 first.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import Match, Route

from mlgate.app import INFERENCE_ROUTES
from mlgate.protocols.routes import InferenceRoute
from tests.secure import bearer, secure_app

pytestmark = pytest.mark.anyio

PREFIXES = ("/v2/models/", "/v1/models/", "/v1/embeddings")
CALLS = ["/v2/models/breast-cancer/infer", "/v2/models/breast-cancer/versions/1/infer",
         "/v1/models/breast-cancer:predict", "/v1/models/breast-cancer/versions/1:predict", "/v1/embeddings"]


def _concrete(documented: str) -> str:
    return re.sub(r"\{model_name\}", "breast-cancer", documented).replace("{model_version}", "1")


def _scope(path: str) -> dict[str, object]:
    return {"type": "http", "method": "POST", "path": path, "root_path": "", "headers": [], "query_string": b""}


async def test_each_inference_operation_has_exactly_one_route(examples_repo: Path) -> None:
    async with secure_app(examples_repo) as sec:
        routes = sec.app.router.routes
        for path in CALLS:
            full = [route for route in routes if route.matches(_scope(path))[0] is Match.FULL]
            assert len(full) == 1, (path, full)
            assert isinstance(full[0], InferenceRoute) and full[0] in INFERENCE_ROUTES
        for route in routes:
            if isinstance(route, Route) and "POST" in (route.methods or ()) and route.path.startswith(PREFIXES):
                assert route in INFERENCE_ROUTES, f"{route.path} is an inference route outside INFERENCE_ROUTES"
        documented = {route.operation.path for route in INFERENCE_ROUTES}
        assert {_concrete(p) for p in documented} == set(CALLS)
        paths = (await sec.client.get("/openapi.json")).json()["paths"]
        assert documented <= set(paths)


async def test_every_inference_route_admits_the_caller_before_reading_the_body(examples_repo: Path) -> None:
    async with secure_app(examples_repo) as sec:  # nothing open to anonymous callers
        await sec.user("alice")
        digits_only = await sec.key("alice", models=["digits"])
        for route in INFERENCE_ROUTES:
            path = _concrete(route.operation.path)
            anonymous = await sec.client.post(path, content=b"{not json", headers={"content-type": "application/json"})
            assert anonymous.status_code == 401, (path, anonymous.text)
            if path == "/v1/embeddings":  # the model is in the body: admitted on it once the body names it
                body = {"model": "breast-cancer", "input": "a sentence"}
                scoped = await sec.client.post(path, json=body, headers=bearer(digits_only))
            else:
                scoped = await sec.client.post(path, content=b"{not json", headers={
                    "content-type": "application/json", **bearer(digits_only)})
            assert scoped.status_code == 403, (path, scoped.text)
            assert scoped.json()["code"] == "forbidden"
