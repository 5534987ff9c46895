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
from mlgate.cli.ops import config_app, db_app, doctor
from mlgate.cli.security import groups_app, keys_app, users_app
from mlgate.cli.worker import worker
from mlgate.settings import Settings, default_examples_dir

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
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(examples_app, name="examples")
app.add_typer(config_app, name="config")
app.command()(doctor)

@app.command()
def serve(
    path: Annotated[Path | None, typer.Argument(
        help="What to serve: a folder of model directories, one model directory (model.toml or MLflow MLmodel), "
        "or one artifact file (.joblib, .pkl, .skops, .onnx) served under its file name (default: the "
        "--model-repository setting, else the example models).", show_default=False)] = None,
    config: ConfigOption = None,
    model_repository: RepositoryOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: 127.0.0.1).",
                                             show_default=False)] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: 8000).", show_default=False)] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.",
                                                  show_default=False)] = None,
    log_format: Annotated[str | None, typer.Option(help="auto, console or json.", show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(help="HTTP server processes (default: one per CPU core).",
                                                show_default=False)] = None,
) -> None:
    """Serve models over HTTP (KServe V2 and V1 REST, OpenAI embeddings, OpenAPI docs at /docs): a model
    repository, one model directory, or one model file.

    A repository folder with no model in it (and no model in the registry database) is an error: the server
    would serve nothing."""
    from mlgate.logs import configure_logging
    from mlgate.model.examples import build_examples
    from mlgate.server import run_server

    if path is not None and model_repository is not None:
        err.print("[red]error:[/red] give what to serve once: PATH or --model-repository")
        raise typer.Exit(2)
    settings = settings_from(config, model_repository=path or model_repository, host=host, port=port,
                             log_level=log_level, log_format=log_format, workers=workers)
    if settings.model_repository is None:
        examples = default_examples_dir()
        err.print(f"No model repository given: serving the example models from {examples}")
        build_examples(examples, progress=lambda line: err.print(f"  {escape(line)}"))
        settings = settings.model_copy(update={"model_repository": examples})
    else:
        _check_servable(settings)
    try:
        configure_logging(settings.log_level, settings.log_format, settings.log_file)
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot write the log file {settings.log_file}: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    from mlgate.db.migrate import SchemaTooNew

    try:
        run_server(settings)
    except SchemaTooNew as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None


def _check_servable(settings: Settings) -> None:
    """Exit 2 with the reason when ``settings.model_repository`` cannot serve anything."""
    from mlgate.model.repository import scan_repository

    root = settings.model_repository
    assert root is not None
    try:
        sources = scan_repository(root)
    except FileNotFoundError:
        err.print(f"[red]error:[/red] {root} is not a directory or a model file")
        raise typer.Exit(2) from None
    except ValueError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    if sources or settings.allow_empty_repository or _registry_has_models(settings):
        return
    err.print(f"[red]error:[/red] no model in {root}: it has no model directory (a sub-folder with a model.toml "
              "or an MLflow MLmodel file), and the registry has no model either.")
    err.print("Serve one model file with: mlgate serve model.joblib (or .onnx), one model directory with: "
              "mlgate serve DIR, or build the examples with: mlgate examples build. For a registry-only server "
              "that models will be pushed to, set MLGATE_ALLOW_EMPTY_REPOSITORY=true.")
    raise typer.Exit(2)


def _registry_has_models(settings: Settings) -> bool:
    """Whether the registry database holds a model (False when it does not exist yet or cannot be read)."""
    import asyncio

    from mlgate.db.engine import Database
    from mlgate.db.queries.catalog import Catalog
    url = settings.effective_database_url
    if url.startswith("sqlite") and not (settings.data_dir / "mlgate.db").exists() and settings.database_url is None:
        return False

    async def check() -> bool:
        database = Database(url)
        try:
            return bool((await Catalog(database).snapshot()).models)
        finally:
            await database.dispose()

    try:
        return asyncio.run(check())
    except Exception:  # noqa: BLE001 - no schema yet, or unreachable: no registry models to serve
        return False


@models_app.command("list")
def list_models(config: ConfigOption = None, model_repository: RepositoryOption = None) -> None:
    """List the model directories of the repository with their manifests' status (nothing is loaded).

    A running server says why a model failed to load in POST /v2/repository/index and GET /v2/models/NAME/ready
    (to callers with the deploy right)."""
    from mlgate.model.repository import scan_repository
    from mlgate.runtimes import RUNTIMES

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
        status = "[green]ok[/green]" if source.error is None else f"[red]error:[/red] {escape(source.error)}"
        if manifest is not None and source.error is None:
            if manifest.runtime not in RUNTIMES:
                status = (f"[red]error:[/red] unknown runtime {manifest.runtime!r} "
                          f"(known: {', '.join(sorted(RUNTIMES))})")
            elif not (source.directory / manifest.artifact).exists():
                status = f"[red]error:[/red] artifact {escape(repr(manifest.artifact))} missing"
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
    name: Annotated[str | None, typer.Option(help="Model name (default: the manifest's, else the folder's).",
                                             show_default=False)] = None,
    version: Annotated[str | None, typer.Option(help="Version (default: the manifest's, else the next number).",
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


def _traffic_text(traffic: dict[str, Any]) -> str:
    canary = traffic.get("canary")
    canary_text = f"{canary['version']} at {canary['percent']:g}%" if canary else "off"
    return f"canary {canary_text}, shadow {traffic.get('shadow') or 'off'}"


@models_app.command("traffic")
def traffic(
    name: Annotated[str, typer.Argument(help="Model name.")],
    canary: Annotated[str | None, typer.Option(help="Send a share of the requests without a version to this "
                                               "version (needs --percent).", show_default=False)] = None,
    percent: Annotated[float | None, typer.Option(help="The canary's share of requests, above 0 and up to 100.",
                                                  show_default=False)] = None,
    shadow: Annotated[str | None, typer.Option(help="Send a copy of every request to this version (answers "
                                               "logged, never returned).", show_default=False)] = None,
    no_canary: Annotated[bool, typer.Option("--no-canary", help="Turn the canary off.")] = False,
    no_shadow: Annotated[bool, typer.Option("--no-shadow", help="Turn the shadow off.")] = False,
    url: ServerOption = "http://127.0.0.1:8000",
    api_key: ApiKeyOption = None,
) -> None:
    """Show or change a registry model's canary split and shadow version (what is not named stays as it is)."""
    if canary is not None and no_canary or shadow is not None and no_shadow:
        err.print("[red]error:[/red] --canary with --no-canary (or --shadow with --no-shadow): choose one")
        raise typer.Exit(2)
    if (canary is None) != (percent is None):
        err.print("[red]error:[/red] --canary VERSION and --percent P go together")
        raise typer.Exit(2)
    current = _registry_call(url, api_key, lambda c: c.traffic(name))
    if canary is None and shadow is None and not no_canary and not no_shadow:
        out.print(f"{name}: {_traffic_text(current)}")
        return
    old_canary = current.get("canary") or {}
    new_canary = None if no_canary else canary or old_canary.get("version")
    new_percent = percent if percent is not None else float(old_canary.get("percent") or 0.0)
    new_shadow = None if no_shadow else shadow or current.get("shadow")
    changed = _registry_call(url, api_key, lambda c: c.set_traffic(name, canary=new_canary, percent=new_percent,
                                                                   shadow=new_shadow))
    out.print(f"{name}: {_traffic_text(changed)}")


@examples_app.command("build")
def build(
    directory: Annotated[Path | None, typer.Argument(
        help="Where to write the model directories (default: the cache folder `mlgate serve` serves when no "
        "repository is given).", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild models that already exist.")] = False,
    name: Annotated[list[str] | None, typer.Option("--name", "-n", help="Build only this example (repeatable): "
                                                   "breast-cancer, digits or minilm.", show_default=False)] = None,
) -> None:
    """Build the example models: breast-cancer and digits, trained on scikit-learn's bundled data sets,
    digits-cnn (a Keras CNN on the same digits) when the keras extra is installed, and minilm (sentence
    embeddings) when the embeddings extra is installed."""
    from mlgate.model.examples import build_examples

    target = directory if directory is not None else default_examples_dir()
    try:
        dirs = build_examples(target, force=force, names=name or None,
                              progress=lambda line: out.print(escape(line)))
    except ValueError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    serve = "mlgate serve" if directory is None else f"mlgate serve --model-repository {directory}"
    out.print(f"{len(dirs)} models ready in {target}. Serve them with: {serve}")


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
