"""Operating commands: `mlgate db upgrade` on a fresh data directory, a schema newer than this release,
`mlgate config show` and `mlgate doctor` against the real services and against closed ports."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlgate.cli.main import app
from mlgate.db.migrate import SchemaTooNew, head_revision, upgrade
from mlgate.logs import configure_logging
from tests.fakes import sum_model

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_db_upgrade_creates_a_fresh_data_directory_and_says_what_it_did(tmp_path: Path) -> None:
    data = tmp_path / "not" / "yet"
    first = runner.invoke(app, ["db", "upgrade"], env={**WIDE, "MLGATE_DATA_DIR": str(data)})
    assert first.exit_code == 0, first.output
    assert f"created data directory {data}" in first.output
    assert f"(empty) -> {head_revision()}" in first.output
    assert (data / "mlgate.db").is_file()
    again = runner.invoke(app, ["db", "upgrade"], env={**WIDE, "MLGATE_DATA_DIR": str(data)})
    assert again.exit_code == 0 and f"already at {head_revision()} (nothing to do)" in again.output
    assert "created" not in again.output


def _from_the_future(data: Path) -> None:
    upgrade(f"sqlite+aiosqlite:///{data / 'mlgate.db'}")
    with sqlite3.connect(data / "mlgate.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0099_from_a_later_release'")


def test_a_schema_newer_than_this_release_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _from_the_future(data)
    sum_model(tmp_path / "repo")  # something to serve: the refusal must be about the schema
    env = {**WIDE, "MLGATE_DATA_DIR": str(data)}
    refused = runner.invoke(app, ["serve", "--model-repository", str(tmp_path / "repo")], env=env)
    # serve configured logging onto the runner's stderr, closed now: put back what tests/conftest.py set up, or
    # every later log line of this test process fails to write (with a traceback) and slows the tests after it
    configure_logging("info", "json")
    assert refused.exit_code == 2, refused.output
    message = " ".join(refused.output.split())
    assert "schema revision '0099_from_a_later_release'" in message and "newer release" in message
    assert "Traceback" not in refused.output
    upgraded = runner.invoke(app, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 1 and "does not know" in " ".join(upgraded.output.split())
    doctor = runner.invoke(app, ["doctor", "--model-repository", str(tmp_path)], env=env)
    assert doctor.exit_code == 1 and "newer than this release knows" in doctor.output
    with pytest.raises(SchemaTooNew):  # start-up's auto-upgrade refuses it the same way
        upgrade(f"sqlite+aiosqlite:///{data / 'mlgate.db'}")


def test_config_show_masks_secrets_and_says_where_each_setting_came_from(tmp_path: Path) -> None:
    config = tmp_path / "mlgate.toml"
    config.write_text('port = 9100\nrate_limit_storage = "redis://:hunter2-redis@127.0.0.1:6379/2"\n')
    env = {**WIDE, "MLGATE_JWT_SECRET": "s" * 40, "MLGATE_DATA_DIR": str(tmp_path),
           "MLGATE_DATABASE_URL": "postgresql://mlgate:hunter2-pg@db.internal/mlgate", "MLGATE_PORT": "9200"}
    shown = runner.invoke(app, ["config", "show", "--config", str(config), "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "hunter2" not in shown.output and "s" * 40 not in shown.output
    settings = json.loads(shown.output)
    assert settings["port"] == {"value": 9200, "source": "env MLGATE_PORT"}  # the environment beats the file
    assert settings["rate_limit_storage"] == {"value": "redis://:********@127.0.0.1:6379/2",
                                              "source": f"file {config}"}
    assert settings["jwt_secret"] == {"value": "********", "source": "env MLGATE_JWT_SECRET"}
    assert settings["database_url"]["value"] == "postgresql://mlgate:********@db.internal/mlgate"
    assert settings["host"] == {"value": "127.0.0.1", "source": "default"}
    table = runner.invoke(app, ["config", "show", "--config", str(config)], env=env)
    assert table.exit_code == 0 and "hunter2" not in table.output and "env MLGATE_PORT" in table.output


def _check_lines(output: str) -> list[str]:
    """The check lines of doctor's output (a log line of a library may come between them under the runner)."""
    return [line for line in output.splitlines() if line.split()[:1] in (["ok"], ["skip"], ["FAIL"])]


def test_doctor_passes_against_the_real_services(tmp_path: Path, empty_postgres_url: str, redis_url: str) -> None:
    sum_model(tmp_path / "repo")
    env = {**WIDE, "MLGATE_DATA_DIR": str(tmp_path / "data"), "MLGATE_DATABASE_URL": empty_postgres_url,
           "MLGATE_RATE_LIMIT_STORAGE": redis_url}
    result = runner.invoke(app, ["doctor", "-m", str(tmp_path / "repo"),
                                 "--broker-url", "amqp://guest:guest@127.0.0.1:5672/"], env=env)
    assert result.exit_code == 0, result.output
    lines = _check_lines(result.output)
    assert [line.split()[0] for line in lines] == ["ok"] * 5, result.output
    assert "no schema yet" in lines[0] and "PONG" in lines[1] and "AMQP 0-9-1 handshake (RabbitMQ" in lines[2]
    assert "1 model(s): sum" in lines[4]


def test_doctor_fails_clearly_when_a_service_is_down(tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    down = closed_port()
    base = {**WIDE, "MLGATE_DATA_DIR": str(tmp_path / "data"), "MLGATE_DATABASE_URL": postgres_url,
            "MLGATE_RATE_LIMIT_STORAGE": redis_url}
    broker = ["--broker-url", "amqp://guest:guest@127.0.0.1:5672/"]
    cases = {
        "database": ({**base, "MLGATE_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{down}/x"}, broker),
        "redis": ({**base, "MLGATE_RATE_LIMIT_STORAGE": f"redis://127.0.0.1:{down}/0"}, broker),
        "broker": (base, ["--broker-url", f"amqp://guest:guest@127.0.0.1:{down}/"]),
    }
    for name, (env, args) in cases.items():
        result = runner.invoke(app, ["doctor", "--timeout-s", "3", *args], env=env)
        assert result.exit_code == 1, (name, result.output)
        failed = [line for line in result.output.splitlines() if line.startswith("FAIL")]
        assert len(failed) == 1 and failed[0].split()[1] == name, (name, result.output)
        assert f"127.0.0.1:{down}" in failed[0] and "refused" in failed[0].lower(), failed[0]
        assert f"1 check(s) failed: {name}" in result.output


def test_doctor_fails_on_a_broken_repository_and_an_unwritable_data_dir(tmp_path: Path) -> None:
    (tmp_path / "repo" / "broken").mkdir(parents=True)
    (tmp_path / "repo" / "broken" / "model.toml").write_text('name = "broken"\n')
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = runner.invoke(app, ["doctor", "-m", str(tmp_path / "repo")],
                           env={**WIDE, "MLGATE_DATA_DIR": str(not_a_dir)})
    assert result.exit_code == 1
    failed = {line.split()[1] + " " + line.split()[2] for line in result.output.splitlines()
              if line.startswith("FAIL")}
    assert failed == {"data directory", "model repository"}, result.output
