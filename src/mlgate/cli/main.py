"""The ``mlgate`` command: serve, inspect the model repository, build the examples, print the version.

Settings are built once here (flags > ``MLGATE_*`` environment > ``--config`` TOML file > defaults) and
handed to the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlgate import __version__
from mlgate.cli.common import ConfigOption, RepositoryOption, err, out, settings_from
from mlgate.cli.jobs import jobs_app
from mlgate.cli.security import groups_app, keys_app, users_app
from mlgate.cli.worker import worker
from mlgate.settings import default_examples_dir

__all__ = ["app"]

app = typer.Typer(
    name="mlgate",
    help="Serve trained machine-learning models over the KServe V2 and V1 REST protocols.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Inspect the model repository; push, promote and roll back registry versions.",
                         no_args_is_help=True)
examples_app = typer.Typer(help="Build the example models from real data.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database schema (migrations).", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(examples_app, name="examples")

@app.command()
def serve(
    config: ConfigOption = None,
    model_repository: RepositoryOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].",
                                             show_default=False)] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [default: 8000].", show_default=False)] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.",
                                                  show_default=False)] = None,
    log_format: Annotated[str | None, typer.Option(help="auto, console or json.", show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(help="HTTP server processes [default: one per CPU core].",
                                                show_default=False)] = None,
) -> None:
    """Serve the model repository over HTTP (KServe V2 and V1 REST, OpenAPI docs at /docs)."""
    from mlgate.logs import configure_logging
    from mlgate.model.examples import build_examples
    from mlgate.server import run_server

    settings = settings_from(config, model_repository=model_repository, host=host, port=port,
                         log_level=log_level, log_format=log_format, workers=workers)
    if settings.model_repository is None:
        examples = default_examples_dir()
        err.print(f"No model repository given: serving the example models from {examples}")
        build_examples(examples, progress=lambda line: err.print(f"  {escape(line)}"))
        settings = settings.model_copy(update={"model_repository": examples})
    elif not settings.model_repository.is_dir():
        err.print(f"[red]error:[/red] model repository {settings.model_repository} is not a directory")
        raise typer.Exit(2)
    configure_logging(settings.log_level, settings.log_format)
    run_server(settings)


@models_app.command("list")
def list_models(config: ConfigOption = None, model_repository: RepositoryOption = None) -> None:
    """List the model directories of the repository with their manifests' status (nothing is loaded)."""
    from mlgate.model.repository import scan_repository

    settings = settings_from(config, model_repository=model_repository)
    root = settings.model_repository or default_examples_dir()
    try:
        sources = scan_repository(root)
    except FileNotFoundError as exc:
        err.print(f"[red]error:[/red] {exc}")
        if settings.model_repository is None:
            err.print("Build the examples with: mlgate examples build " + str(root))
        raise typer.Exit(2) from None
    table = Table(title=f"Model repository {root}")
    for column in ("name", "version", "runtime", "artifact", "status"):
        table.add_column(column)
    for source in sources:
        manifest = source.manifest
        status = "[green]ok[/green]" if source.error is None else f"[red]error:[/red] {source.error}"
        if manifest is not None and source.error is None and not (source.directory / manifest.artifact).is_file():
            status = f"[red]error:[/red] artifact {manifest.artifact!r} missing"
        table.add_row(source.name, source.version, manifest.runtime if manifest else "?",
                      manifest.artifact if manifest else "?", status)
    out.print(table)
    if not sources:
        out.print("No model directories (sub-folders with a model.toml) found.")


ServerOption = Annotated[str, typer.Option("--url", envvar="MLGATE_URL", help="The mlgate server.")]
ApiKeyOption = Annotated[str | None, typer.Option("--api-key", envvar="MLGATE_API_KEY", show_default=False,
                                                  help="Sent as Authorization: Bearer <key>.")]


def _registry_call(url: str, api_key: str | None, call: Any) -> Any:
    import httpx

    from mlgate.catalog.client import RegistryClient, RegistryError

    client = RegistryClient(url, api_key=api_key)
    try:
        return call(client)
    except RegistryError as exc:
        err.print(f"[red]error:[/red] {exc.message} ({exc.status} {exc.code or ''})")
        if exc.status == 401:
            err.print("The registry needs an API key with the deploy right: pass --api-key or set MLGATE_API_KEY "
                      "(make one with: mlgate keys create --user NAME --name cli --action deploy --plain).")
        raise typer.Exit(1) from None
    except (OSError, httpx.TransportError) as exc:
        err.print(f"[red]error:[/red] cannot reach {url}: {exc}")
        raise typer.Exit(1) from None
    finally:
        client.close()


@models_app.command("push")
def push(
    directory: Annotated[Path, typer.Argument(help="Model directory (model.toml or MLflow MLmodel).",
                                              exists=True, file_okay=False)],
    name: Annotated[str | None, typer.Option(help="Model name [default: the manifest's, else the folder's].",
                                             show_default=False)] = None,
    version: Annotated[str | None, typer.Option(help="Version [default: the manifest's, else the next number].",
                                                show_default=False)] = None,
    promote: Annotated[str | None, typer.Option(help="Then point this alias (e.g. production) at it.",
                                                show_default=False)] = None,
    url: ServerOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
) -> None:
    """Push a model directory to a running server's registry (packed as tar.gz, with a progress bar)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from mlgate.model.manifest import MANIFEST_FILE, read_manifest

    if name is None:
        name = read_manifest(directory).name if (directory / MANIFEST_FILE).is_file() else directory.resolve().name
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=err) as progress:
        task = progress.add_task(f"push {name}", total=None)

        def call(client: Any) -> Any:
            return client.push(directory, name, version=version,
                               on_packed=lambda size: progress.update(task, total=size),
                               on_sent=lambda n: progress.advance(task, n))

        pushed = _registry_call(url, api_key, call)
    out.print(f"pushed {pushed['name']} version {pushed['version']} (sha256 {pushed['checksum']})")
    if promote:
        moved = _registry_call(url, api_key, lambda c: c.promote(pushed["name"], pushed["version"], promote))
        out.print(f"{promote}: {moved['previous'] or '(none)'} -> {moved['version']}")


@models_app.command("promote")
def promote_version(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version to move the alias to.")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "production",
    url: ServerOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
) -> None:
    """Move an alias (default production) to a version; it is loaded and warmed before traffic moves."""
    moved = _registry_call(url, api_key, lambda c: c.promote(name, version, alias))
    out.print(f"{name} {alias}: {moved['previous'] or '(none)'} -> {moved['version']}")


@models_app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option(help="Alias to move back.")] = "production",
    url: ServerOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
) -> None:
    """Move an alias back to the version it pointed at before."""
    moved = _registry_call(url, api_key, lambda c: c.rollback(name, alias))
    out.print(f"{name} {alias}: {moved['previous']} -> {moved['version']}")


@examples_app.command("build")
def build(
    directory: Annotated[Path, typer.Argument(help="Where to write the model directories.")],
    force: Annotated[bool, typer.Option("--force", help="Rebuild models that already exist.")] = False,
) -> None:
    """Build the example models: breast-cancer and digits, trained on scikit-learn's bundled data sets, and
    minilm (sentence embeddings) when the embeddings extra is installed."""
    from mlgate.model.examples import build_examples

    dirs = build_examples(directory, force=force, progress=lambda line: out.print(escape(line)))
    out.print(f"{len(dirs)} models ready. Serve them with: mlgate serve --model-repository {directory}")


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOption = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL [default: settings].",
                                                     show_default=False)] = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply the database migrations (SQLite by default, PostgreSQL via MLGATE_DATABASE_URL)."""
    import asyncio

    from mlgate.db.migrate import current_revision, upgrade

    settings = settings_from(config, database_url=database_url)
    url = settings.effective_database_url
    from mlgate.db.engine import async_url

    shown = async_url(url).render_as_string(hide_password=True)
    before = asyncio.run(current_revision(url))
    upgrade(url, revision)
    after = asyncio.run(current_revision(url))
    out.print(f"database {shown}: {before or '(empty)'} -> {after}")


@app.command()
def version() -> None:
    """Print the versions of mlgate and the libraries it serves models with."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    out.print(f"mlgate {__version__}")
    for dist in ("fastapi", "uvicorn", "numpy", "scikit-learn", "onnxruntime", "torch", "sentence-transformers"):
        try:
            out.print(f"  {dist} {dist_version(dist)}")
        except PackageNotFoundError:
            out.print(f"  {dist} not installed")


app.add_typer(users_app, name="users")
app.add_typer(groups_app, name="groups")
app.add_typer(keys_app, name="keys")
app.add_typer(jobs_app, name="jobs")
app.command()(worker)
