"""A manifest's numbers are numbers: ``true`` is not 1 (one worker, a batch of one, a 1 ms timeout, a daily quota
of one). Such a folder model is not ready, with the field named in the log. Real app, real HTTP (ASGI)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import sum_model

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("line", "field"), [
    ("instances = true\n", "instances"),
    ("timeout_ms = true\n", "timeout_ms"),
    ("[batching]\nmax_batch_size = true\n", "batching.max_batch_size"),
    ("[rate_limit.default]\ndaily_requests = true\n", "rate_limit.default.daily_requests"),
])
async def test_true_is_not_a_number(app_client: Callable[..., Any], tmp_path: Path, line: str, field: str,
                                    caplog: pytest.LogCaptureFixture) -> None:
    directory = sum_model(tmp_path / "repo")
    toml = (directory / "model.toml").read_text()
    head, _, tensors = toml.partition("[[inputs]]")
    first = line if line.startswith("[") else ""
    (directory / "model.toml").write_text((head + (line if not first else "")) + "[[inputs]]" + tensors
                                          + ("\n" + first if first else ""))
    async with app_client(tmp_path / "repo") as client:
        ready = await client.get("/v2/models/sum/ready")
        assert ready.status_code == 400, ready.text
    assert any(field in record.getMessage() and "bool" in record.getMessage().lower()
               for record in caplog.records), [r.getMessage()[:300] for r in caplog.records][-5:]
