"""The tritonclient.grpc examples of docs/grpc.md, run as printed (the synchronous client, in a thread) against
the example models open to anonymous callers, as `mlgate serve` serves them; only the port differs."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import anyio
import pytest

from tests.protocols.grpc.conftest import grpc_app

DOC = Path(__file__).resolve().parents[3] / "docs" / "grpc.md"


def run(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {})  # noqa: S102 - the page's own example
    return out.getvalue()


@pytest.mark.anyio
async def test_the_pages_examples_print_what_their_comments_say(examples_repo: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    first, stream = blocks[0], blocks[1]
    async with grpc_app(examples_repo, anonymous_models=["*"],
                        rate_limit_tiers={"anonymous": {"requests": "", "rows": ""}}) as app:
        printed = await anyio.to_thread.run_sync(run, first.replace("localhost:8001", app.address))
        assert printed.splitlines() == ["True True", "[0 1 1 1]", "doc-1", "(256,)", "(256, 2)"]
        printed = await anyio.to_thread.run_sync(run, stream.replace("localhost:8001", app.address))
        assert printed.splitlines() == ["0 [0]", "1 [1]", "2 [1]", "3 [1]"]
