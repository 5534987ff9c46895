"""The mlgate command line, run through Typer's runner (the serve command runs for real in test_server_process)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mlgate import __version__
from mlgate.cli.main import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "models", "examples", "version"):
        assert command in result.output
    serve_help = runner.invoke(app, ["serve", "--help"])
    assert "--model-repository" in serve_help.output and "--config" in serve_help.output


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and f"mlgate {__version__}" in result.output


def test_examples_build_then_models_list(tmp_path: Path) -> None:
    target = tmp_path / "repo"
    first = runner.invoke(app, ["examples", "build", str(target)])
    assert first.exit_code == 0, first.output
    assert "breast-cancer: written to" in first.output and "digits: written to" in first.output
    again = runner.invoke(app, ["examples", "build", str(target)])
    assert again.exit_code == 0 and "breast-cancer: already built" in again.output
    (target / "broken").mkdir()
    (target / "broken" / "model.toml").write_text('name = "broken"\n')
    listed = runner.invoke(app, ["models", "list", "--model-repository", str(target)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0
    assert "breast-cancer" in listed.output and "digits" in listed.output and "onnx" in listed.output
    assert "broken" in listed.output and "runtime" in listed.output and "error" in listed.output


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("port = -1\n")
    result = runner.invoke(app, ["models", "list", "--config", str(config)])
    assert result.exit_code == 2 and "port" in result.output
    missing = runner.invoke(app, ["serve", "--model-repository", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not a directory" in missing.output


def test_models_list_names_an_unknown_runtime(tmp_path: Path) -> None:
    (tmp_path / "tf").mkdir()
    (tmp_path / "tf" / "model.toml").write_text('name = "tf"\nruntime = "caffe2"\nartifact = "model.py"\n')
    (tmp_path / "tf" / "model.py").write_text("")
    listed = runner.invoke(app, ["models", "list", "--model-repository", str(tmp_path)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    (row,) = [line for line in listed.output.splitlines() if "tf" in line and "caffe2" in line]
    assert "ok" not in row and "unknown runtime 'caffe2'" in row
