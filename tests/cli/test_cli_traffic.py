"""`mlgate models traffic`: show and change a registry model's canary and shadow from the command line, against
a real `mlgate serve` process."""

from __future__ import annotations

from pathlib import Path

import httpx
from typer.testing import CliRunner

from mlgate.cli.main import app
from tests.catalog.test_follower import replica
from tests.processes import admin_key
from tests.registry_helpers import API, versioned_model


def test_canary_and_shadow_from_the_command_line(tmp_path: Path, sqlite_url: str) -> None:
    with replica("cli-traffic", tmp_path, {"MLGATE_DATABASE_URL": sqlite_url}) as url:
        key = admin_key(url)
        runner = CliRunner(env={"MLGATE_API_KEY": key})
        for version in (1, 2, 3):
            pushed = runner.invoke(app, ["models", "push", str(versioned_model(tmp_path, version)), "--url", url]
                                   + (["--promote", "production"] if version == 1 else []))
            assert pushed.exit_code == 0, pushed.output

        shown = runner.invoke(app, ["models", "traffic", "sum", "--url", url])
        assert shown.exit_code == 0 and "sum: canary off, shadow off" in shown.output
        canary = runner.invoke(app, ["models", "traffic", "sum", "--canary", "2", "--percent", "25", "--url", url])
        assert canary.exit_code == 0, canary.output
        assert "sum: canary 2 at 25%, shadow off" in canary.output
        shadow = runner.invoke(app, ["models", "traffic", "sum", "--shadow", "3", "--url", url])
        assert shadow.exit_code == 0 and "sum: canary 2 at 25%, shadow 3" in shadow.output  # the canary stays
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{url}{API}/models/sum/traffic", headers=auth).json() == {
            "canary": {"version": "2", "percent": 25.0}, "shadow": "3"}
        off = runner.invoke(app, ["models", "traffic", "sum", "--no-canary", "--url", url])
        assert off.exit_code == 0 and "sum: canary off, shadow 3" in off.output

        lonely = runner.invoke(app, ["models", "traffic", "sum", "--canary", "2", "--url", url])
        assert lonely.exit_code == 2 and "--percent" in lonely.output
        refused = runner.invoke(app, ["models", "traffic", "sum", "--canary", "9", "--percent", "5", "--url", url])
        assert refused.exit_code == 1 and "error" in refused.output
