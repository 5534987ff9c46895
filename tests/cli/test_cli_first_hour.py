"""The command line as a new user meets it: `db upgrade` on a fresh data directory, `keys list` in 80 columns,
`keys revoke` with the prefix as the docs print it, `examples build` without a directory, and option help
whose defaults are not eaten by the help renderer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlgate.cli.main import app
from mlgate.db.migrate import head_revision
from mlgate.settings import default_examples_dir

COMMANDS = [["serve"], ["models", "list"], ["models", "push"], ["models", "traffic"], ["examples", "build"],
            ["db", "upgrade"], ["users", "create"], ["users", "list"], ["users", "update"], ["groups", "create"],
            ["groups", "add"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"]]


def test_db_upgrade_on_a_fresh_data_directory(tmp_path: Path) -> None:
    fresh = tmp_path / "not" / "yet"
    result = CliRunner(env={"MLGATE_DATA_DIR": str(fresh)}).invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"(empty) -> {head_revision()}" in result.output.replace("\n", "")
    assert (fresh / "mlgate.db").is_file()
    again = CliRunner(env={"MLGATE_DATA_DIR": str(fresh)}).invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0 and f"already at {head_revision()} (nothing to do)" in again.output.replace("\n", "")


def test_db_upgrade_says_what_is_wrong_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    runner = CliRunner(env={"MLGATE_DATA_DIR": str(tmp_path)})
    blocked = runner.invoke(app, ["db", "upgrade", "--database-url", f"sqlite:///{tmp_path / 'a-file' / 'x.db'}"])
    assert blocked.exit_code == 1 and "cannot create the data directory" in blocked.output
    assert "a-file" in blocked.output and "Traceback" not in blocked.output and blocked.exception is not None
    unreachable = runner.invoke(app, ["db", "upgrade", "--database-url", "postgresql://postgres@127.0.0.1:9/none"])
    assert unreachable.exit_code == 1 and "cannot open the database" in unreachable.output


def test_keys_list_fits_80_columns_and_revoke_takes_the_documented_prefix(tmp_path: Path) -> None:
    runner = CliRunner(env={"MLGATE_DATA_DIR": str(tmp_path), "COLUMNS": "80"})
    made = runner.invoke(app, ["users", "create", "alice", "--password-stdin"], input="a good password\n")
    assert made.exit_code == 0, made.output
    keys = []
    for name, extra in (("laptop", []), ("ci runner for fraud", ["--model", "fraud-*", "--model", "churn",
                                                                  "--action", "predict", "--expires-in", "30d"])):
        result = runner.invoke(app, ["keys", "create", "--user", "alice", "--name", name, "--plain", *extra])
        assert result.exit_code == 0, result.output
        keys.append(result.output.strip())
    listed = runner.invoke(app, ["keys", "list"]).output
    assert max(len(line) for line in listed.splitlines()) <= 80 and "…" not in listed
    for word in ("alice", "laptop", "runner", "fraud-*", "churn", "predict", "default", "active"):
        assert word in listed, word
    for key in keys:
        assert key[:16] in listed  # mlg_ and the 12 hex digits, whole on one line

    # mlg_<prefix>_<secret>: the docs' <prefix> alone, and the whole key, both name the key.
    first, second = keys
    by_digits = runner.invoke(app, ["keys", "revoke", first.split("_")[1]])
    assert by_digits.exit_code == 0 and f"key {first[:16]}" in by_digits.output and "revoked" in by_digits.output
    by_key = runner.invoke(app, ["keys", "revoke", second])
    assert by_key.exit_code == 0 and f"key {second[:16]}" in by_key.output
    assert runner.invoke(app, ["keys", "list"]).output.count("revoked") == 2


def test_examples_build_defaults_to_the_folder_serve_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    target = default_examples_dir()
    assert target.is_relative_to(tmp_path)
    result = CliRunner().invoke(app, ["examples", "build", "--name", "breast-cancer"])
    assert result.exit_code == 0, result.output
    assert (target / "breast-cancer" / "model.toml").is_file()
    assert "Serve them with: mlgate serve" in result.output


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_option_help_keeps_its_defaults(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # A "[default: ...]" in a help text is Rich markup to Typer: it vanished and left " ." behind.
    assert not re.search(r"[\w)] \.(\s|$)", result.output), result.output
