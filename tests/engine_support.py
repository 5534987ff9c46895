"""Helpers of the inference engine tests: the real app with access to its internals, waiting, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from mlgate.app import create_app
from mlgate.settings import Settings
from tests.services import prepare_database

INFER = "/v2/models/gated/infer"


def one_row(value: float) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [value]}]}


@asynccontextmanager
async def serve(repository: Path, **settings: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    # As in tests/conftest.py: every model open to anonymous callers, and a data directory of the test's own
    # whose database starts as a copy of the migrated template (tests/services.py).
    settings.setdefault("anonymous_models", ["*"])
    prepare_database(settings)
    app = create_app(Settings(model_repository=repository, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mlgate.test") as client:
            yield app, client


async def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    give_up = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < give_up, "condition not reached"
        await asyncio.sleep(0.005)


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def queue_depth(app: FastAPI, model: str = "gated") -> int:
    depth: int = app.state.mlgate.dataplane.registry.get(model).executor.queue_depth
    return depth
