"""`mlgate models push / promote / rollback` against a real `mlgate serve` process, over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
from typer.testing import CliRunner

from mlgate.cli.main import app
from tests.catalog.test_follower import replica
from tests.processes import admin_key
from tests.registry_helpers import API, ZEROS, versioned_model


def test_push_promote_rollback_from_the_command_line(tmp_path: Path, sqlite_url: str) -> None:
    with replica("cli", tmp_path, {"MLGATE_DATABASE_URL": sqlite_url}) as url:
        key = admin_key(url)
        runner = CliRunner(env={"MLGATE_API_KEY": key})  # as a deployer's shell would have it
        first = runner.invoke(app, ["models", "push", str(versioned_model(tmp_path, 1)), "--url", url,
                                    "--promote", "production"])
        assert first.exit_code == 0, first.output
        assert "pushed sum version 1" in first.output and "production: (none) -> 1" in first.output
        second = runner.invoke(app, ["models", "push", str(versioned_model(tmp_path, 2)), "--url", url])
        assert second.exit_code == 0 and "version 2" in second.output
        assert httpx.post(f"{url}/v2/models/sum/infer", json=ZEROS).json()["model_version"] == "1"

        promoted = runner.invoke(app, ["models", "promote", "sum", "2", "--url", url])
        assert promoted.exit_code == 0 and "production: 1 -> 2" in promoted.output
        assert httpx.post(f"{url}/v2/models/sum/infer", json=ZEROS).json()["model_version"] == "2"
        back = runner.invoke(app, ["models", "rollback", "sum", "--url", url])
        assert back.exit_code == 0 and "production: 2 -> 1" in back.output

        again = runner.invoke(app, ["models", "push", str(versioned_model(tmp_path, 3)), "--url", url,
                                    "--version", "1"])
        assert again.exit_code == 1 and "immutable" in again.output
        shown = httpx.get(f"{url}{API}/models/sum", headers={"Authorization": f"Bearer {key}"})
        assert shown.json()["aliases"] == {"production": "1"}
    down = runner.invoke(app, ["models", "promote", "sum", "2", "--url", url])
    assert down.exit_code == 1 and "cannot reach" in down.output
