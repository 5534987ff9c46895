"""The ``mlgate`` command line (Typer): ``serve``, ``models``, ``examples``, ``db``, ``users``, ``groups``, ``keys``.

``main`` holds the root command and the serving, repository and schema commands; ``security`` the users,
groups and keys; ``common`` what they share. Nothing else in mlgate imports this package.
"""

from mlgate.cli.main import app

__all__ = ["app"]
