"""What every ``mlgate`` command shares: the consoles, the ``--config`` and ``--model-repository`` options,
and building Settings once from them (flags > ``MLGATE_*`` environment > ``--config`` TOML file > defaults)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from mlgate.settings import Settings

__all__ = ["ConfigOption", "RepositoryOption", "err", "out", "settings_from"]

out = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file (flat keys, e.g. port = 9000).", show_default=False),
]
RepositoryOption = Annotated[
    Path | None,
    typer.Option("--model-repository", "-m",
                 help="Folder of model directories (default: the examples, built on first use).",
                 show_default=False),
]


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    """Settings from the flags given as ``overrides``, the environment and ``config``; exit 2 when invalid."""
    try:
        return Settings.load(config, **overrides)
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except ValidationError as exc:
        err.print("[red]error:[/red] invalid settings:")
        for problem in exc.errors():
            where = ".".join(str(p) for p in problem["loc"])
            err.print(f"  {where}: {problem['msg']}")
        raise typer.Exit(2) from None
