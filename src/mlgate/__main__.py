"""``python -m mlgate`` runs the command-line interface."""

from mlgate.cli.main import app

app(prog_name="mlgate")
