"""Operating commands: ``mlgate db upgrade``, ``mlgate config show`` and ``mlgate doctor``.

``doctor`` checks what a server needs before it starts, one line each, and exits 1 when any check fails:
the database (reachable, schema known), Redis (when the rate limits use it), the message broker (an AMQP
0-9-1 handshake, when one is given), the data directory and the model repository. The checks live in
``mlgate.cli.checks``.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.markup import escape
from rich.table import Table

from mlgate.cli.common import ConfigOption, RepositoryOption, err, out, settings_from
from mlgate.settings import Settings

__all__ = ["config_app", "db_app", "doctor", "mask_url", "setting_sources"]

db_app = typer.Typer(help="Manage the database schema (migrations).", no_args_is_help=True)
config_app = typer.Typer(help="Show the settings a server would run with.", no_args_is_help=True)

MASK = "********"


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOption = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: the settings' database_url).",
                                                     show_default=False)] = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply the database migrations (SQLite in the data directory by default, PostgreSQL via
    MLGATE_DATABASE_URL); creates the data directory of a SQLite database when it does not exist."""
    import asyncio

    from mlgate.db.engine import async_url
    from mlgate.db.migrate import SchemaTooNew, current_revision, upgrade
    from mlgate.errors import DatabaseUnavailable

    settings = settings_from(config, database_url=database_url)
    url = settings.effective_database_url
    parsed = async_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).parent
        if not folder.is_dir():
            try:
                folder.mkdir(parents=True)
            except OSError as exc:
                err.print(f"[red]error:[/red] cannot create the data directory {folder}: {exc}")
                raise typer.Exit(1) from None
            out.print(f"created data directory {folder}", soft_wrap=True)
    try:
        before = asyncio.run(current_revision(url))
        upgrade(url, revision)
        after = asyncio.run(current_revision(url))
    except SchemaTooNew as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except DatabaseUnavailable as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from None
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot reach database {shown}: {exc}")
        raise typer.Exit(1) from None
    if before == after:
        out.print(f"database {shown}: already at {after} (nothing to do)", soft_wrap=True)
    else:
        out.print(f"database {shown}: {before or '(empty)'} -> {after}", soft_wrap=True)


def mask_url(value: str) -> str:
    """``value`` with the password of a URL (``scheme://user:password@host``) replaced by ``********``."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if not parts.password:
        return value
    netloc = parts.netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def setting_sources(config_file: Path | None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Where each setting's value comes from: ``env MLGATE_X``, ``file <path>`` or ``default``
    (the order ``Settings.load`` gives them priority in; flags are not part of ``config show``)."""
    environ = dict(os.environ if environ is None else environ)
    env_names = {key.upper() for key in environ}
    file_keys: set[str] = set()
    if config_file is not None and config_file.is_file():
        with config_file.open("rb") as fh:
            file_keys = set(tomllib.load(fh))
    sources = {}
    for name in Settings.model_fields:
        env = f"MLGATE_{name.upper()}"
        if env in env_names:
            sources[name] = f"env {env}"
        elif name in file_keys:
            sources[name] = f"file {config_file}"
        else:
            sources[name] = "default"
    return sources


def _shown(name: str, value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _shown(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(name, v) for v in value]
    return value


@config_app.command("show")
def config_show(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: {name: {value, source}}.")] = False,
) -> None:
    """The effective settings (environment > --config file > defaults), secrets masked, with where each came
    from."""
    settings = settings_from(config)
    sources = setting_sources(config)
    values = {name: _shown(name, getattr(settings, name)) for name in Settings.model_fields}
    values["database_url"] = values["database_url"] or None
    if as_json:
        out.print_json(json.dumps({n: {"value": v, "source": sources[n]} for n, v in values.items()}))
        return
    table = Table(title="mlgate settings")
    for column in ("setting", "value", "source"):
        table.add_column(column)
    for name, value in values.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        style = "" if sources[name] == "default" else "bold"
        table.add_row(name, escape(shown), sources[name], style=style)
    out.print(table)
    out.print(f"database: {escape(mask_url(settings.effective_database_url))}")


def doctor(
    config: ConfigOption = None,
    model_repository: RepositoryOption = None,
    broker_url: Annotated[str | None, typer.Option(
        "--broker-url", show_default=False,
        help="URL of the job broker, e.g. amqp://guest:guest@127.0.0.1:5672/ (default: the jobs_broker "
        "setting; none: not checked).")] = None,
    timeout_s: Annotated[float, typer.Option(help="Seconds each check may take.")] = 5.0,
) -> None:
    """Check the database, Redis, the broker, the data directory and the model repository; one line each.
    Exits 1 when any check fails."""
    from mlgate.cli.checks import run_checks

    settings = settings_from(config, model_repository=model_repository)
    results = run_checks(settings, broker_url=broker_url or settings.jobs_broker, timeout_s=timeout_s)
    marks = {"ok": "[green]ok  [/green]", "skip": "[dim]skip[/dim]", "fail": "[red]FAIL[/red]"}
    for result in results:
        line = f"{marks[result.status]} {result.name:<16} {escape(result.detail)}"
        out.print(line, highlight=False, soft_wrap=True)
    failed = [r.name for r in results if r.status == "fail"]
    if failed:
        err.print(f"[red]{len(failed)} check(s) failed:[/red] {', '.join(failed)}")
        raise typer.Exit(1)
