"""The one settings object of a server, built once (by the CLI or a test) and passed down.

Sources, highest priority first: explicit values (CLI flags), ``MLGATE_*`` environment variables, the TOML
file given by ``--config`` (flat keys, e.g. ``port = 9000``), then the defaults below. Unknown keys in the
TOML file are an error, so a typo does not pass silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "default_data_dir", "default_examples_dir"]

MiB = 1024 * 1024


def default_data_dir() -> Path:
    """Where the embedded default keeps its SQLite database and artifacts.

    ``$XDG_DATA_HOME/mlgate``, else ``~/.local/share/mlgate``.
    """
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "mlgate"


def default_examples_dir() -> Path:
    """Where ``mlgate serve`` builds the example models when no repository is given.

    ``$XDG_CACHE_HOME/mlgate/examples``, else ``~/.cache/mlgate/examples``.
    """
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mlgate" / "examples"


class Settings(BaseSettings):
    """Every knob of an mlgate server. Environment: ``MLGATE_<FIELD>`` (e.g. ``MLGATE_PORT=9000``)."""

    model_config = SettingsConfigDict(env_prefix="MLGATE_", extra="forbid", validate_default=True)

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to listen on.")
    model_repository: Path | None = Field(
        default=None,
        description="Folder of model directories; unset serves the example models, built on first use.",
    )
    strict_readiness: bool = Field(
        default=False,
        description="Report the server ready only when every model loaded (else: when loading finished).",
    )
    max_body_bytes: int = Field(
        default=16 * MiB, ge=1, description="Largest request body accepted, in bytes; larger gets 413."
    )
    max_json_depth: int = Field(
        default=32, ge=2, le=1000, description="Deepest nesting of arrays/objects accepted in a JSON body."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "console", "json"] = Field(
        default="auto", description="auto: readable on a terminal, JSON lines otherwise."
    )
    access_log: bool = Field(default=True, description="Log one line per HTTP request.")

    # -- inference engine: batching, workers, deadlines, metrics ------------------------------------
    request_timeout_ms: float = Field(
        default=60_000.0, gt=0,
        description="Longest an inference may wait and compute, in milliseconds, before it gets 504. A model's "
        "manifest `timeout_ms` replaces it; the header X-Request-Timeout-Ms can only lower it.",
    )
    max_queue_size: int = Field(
        default=1024, ge=1,
        description="Requests that may wait in one model's queue; one more gets 503 with Retry-After. "
        "A manifest's [batching] max_queue_size replaces it.",
    )
    worker_start_timeout_s: float = Field(
        default=120.0, gt=0,
        description="How long a worker process (manifest `instances`) may take to load its model, in seconds.",
    )
    metrics: bool = Field(default=True, description="Serve Prometheus metrics at GET /metrics.")
    workers: int = Field(
        default=0, ge=0,
        description="HTTP server processes sharing the port, each with its own copy of the models and its own "
        "batcher; 0 starts one per CPU core.",
    )

    # -- registry: database, artifact store, rollouts, prediction log -------------------------------
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder of the embedded SQLite database and local artifact store.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+asyncpg://user@host/db; unset: SQLite in data_dir.",
    )
    database_auto_upgrade: bool = Field(
        default=True, description="Apply database migrations at start-up (else: run `mlgate db upgrade`)."
    )

    @property
    def effective_database_url(self) -> str:
        """``database_url``, or the SQLite file ``data_dir/mlgate.db``."""
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'mlgate.db'}"

    # -- security: identities, API keys, permissions, rate limits -----------------------------------

    # -- web: docs, playground, admin, dashboard ----------------------------------------------------

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from ``overrides`` > environment > ``config_file`` (TOML) > defaults.

        ``overrides`` whose value is None are ignored, so CLI options left unset fall through.
        Raises pydantic.ValidationError for bad values and FileNotFoundError for a missing file.
        """
        explicit = {k: v for k, v in overrides.items() if v is not None}
        if config_file is None:
            return cls(**explicit)
        if not config_file.is_file():
            raise FileNotFoundError(f"config file {config_file} does not exist")

        class _FromFile(cls):  # type: ignore[valid-type,misc]
            @classmethod
            def settings_customise_sources(
                cls,
                settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
            ) -> tuple[PydanticBaseSettingsSource, ...]:
                toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file)
                return (init_settings, env_settings, toml)

        loaded = _FromFile(**explicit)
        return cls.model_construct(**loaded.model_dump())
