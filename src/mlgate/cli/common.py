"""What every ``mlgate`` command shares: the consoles, the ``--config`` and ``--model-repository`` options,
and building Settings once from them (flags > ``MLGATE_*`` environment > ``--config`` TOML file > defaults)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from mlgate.errors import MlgateError
from mlgate.settings import Settings

if TYPE_CHECKING:
    from mlgate.db.engine import Database

__all__ = ["ConfigOption", "RepositoryOption", "err", "on_database", "out", "settings_from"]

T = TypeVar("T")

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


def on_database(config: Path | None, database_url: str | None,
                work: Callable[[Settings, Database], Awaitable[T]]) -> T:
    """Run ``work`` on the configured database (migrated first, unless auto-upgrade is off), then close it;
    an MlgateError it raises is printed and exits 1."""
    from mlgate.db.engine import Database
    from mlgate.db.migrate import upgrade

    settings = settings_from(config, database_url=database_url)
    url = settings.effective_database_url
    if settings.database_auto_upgrade:
        upgrade(url)

    async def main() -> T:
        database = Database(url)
        try:
            return await work(settings, database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except MlgateError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
