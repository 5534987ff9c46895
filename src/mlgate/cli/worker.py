"""``mlgate worker``: a process that runs jobs from the broker (``jobs_broker``) on the models it loads.

It loads the model repository (and the registry's versions) like ``mlgate serve``, shares the server's
database and broker, and takes up to ``jobs_concurrency`` jobs at a time; start more, here or on other
machines, to scale out. ``--model PATTERN`` (repeatable, fnmatch: ``bert-*``; setting ``jobs_models``) makes
it load only the models that match (the repository folder's and the registry's) and take only their jobs: a
job of another model that the broker hands it goes back to the queue for a worker that takes it.

A worker killed mid-job leaves its message unacknowledged: the broker delivers it
again (RabbitMQ at once, Redis after twice ``jobs_lease_s``) and another worker takes the job over once
the dead one's lease ran out; the database's conditional updates keep it to one result. SIGTERM or SIGINT:
no new jobs are taken, and the running ones get ``drain_timeout_s`` to finish before they are handed back.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import structlog
import typer
from rich.markup import escape

from mlgate.cli.common import ConfigOption, RepositoryOption, err, settings_from
from mlgate.settings import Settings

__all__ = ["run_worker", "worker"]

log = structlog.get_logger("mlgate.worker")


async def run_worker(settings: Settings) -> None:
    """Serve jobs from ``settings.jobs_broker`` until SIGTERM/SIGINT."""
    from mlgate.db.queries.jobs import JobStore
    from mlgate.inference.engine import InferenceEngine
    from mlgate.inference.registry import ModelRegistry
    from mlgate.jobs.broker import JobBroker
    from mlgate.jobs.runner import JobRunner, takes_model
    from mlgate.lifespan import serve_state
    from mlgate.metrics import EngineMetrics

    assert settings.jobs_broker is not None
    metrics = EngineMetrics()
    registry = ModelRegistry(hooks=[InferenceEngine(settings, metrics)])
    finish = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, finish.set)
    models = tuple(settings.jobs_models)
    async with serve_state(settings, registry, metrics, only=lambda name: takes_model(models, name)) as state:
        broker = JobBroker(settings.jobs_broker, settings.jobs_queue, settings.jobs_concurrency,
                           redis_idle_timeout_s=2 * settings.jobs_lease_s)
        runner = JobRunner(JobStore(state.database), state.dataplane, settings, handback=broker.send)
        await runner.start(poll_queue=False)
        log.info("worker ready", runner=runner.name, queue=settings.jobs_queue,
                 concurrency=settings.jobs_concurrency, models=sorted(registry.names()),
                 patterns=list(models) or None)
        try:
            await broker.serve(runner.run, settings.jobs_concurrency, finish,
                               drain_timeout_s=settings.drain_timeout_s)
        finally:
            await runner.close()
            await broker.close()
    log.info("worker stopped", runner=runner.name)


def worker(
    config: ConfigOption = None,
    model_repository: RepositoryOption = None,
    broker: Annotated[str | None, typer.Option(help="amqp://... or redis://... [default: setting jobs_broker].",
                                               show_default=False)] = None,
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once [default: setting jobs_concurrency].",
                                                    show_default=False)] = None,
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", metavar="PATTERN", show_default=False,
        help="Take only the jobs of models matching PATTERN (fnmatch: bert-*), and load only those; repeat for "
             "more [default: setting jobs_models, empty: every model].")] = None,
) -> None:
    """Run jobs from the broker (MLGATE_JOBS_BROKER) on this machine's copy of the models."""
    from mlgate.logs import configure_logging

    settings = settings_from(config, model_repository=model_repository, jobs_broker=broker,
                             jobs_concurrency=concurrency, jobs_models=model or None)
    if not settings.jobs_broker:
        err.print("[red]error:[/red] no broker: set MLGATE_JOBS_BROKER (amqp://... or redis://...) or --broker; "
                  "without one, `mlgate serve` runs jobs itself")
        raise typer.Exit(2)
    if settings.model_repository is not None and not settings.model_repository.is_dir():
        err.print(f"[red]error:[/red] model repository {escape(str(settings.model_repository))} is not a directory")
        raise typer.Exit(2)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run_worker(settings))
