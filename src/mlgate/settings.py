"""The one settings object of a server, built once (by the CLI or a test) and passed down.

Sources, highest priority first: explicit values (CLI flags), ``MLGATE_*`` environment variables, the TOML
file given by ``--config`` (flat keys, e.g. ``port = 9000``), then the defaults below. Unknown keys in the
TOML file are an error, so a typo does not pass silently.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mlgate.access import RateLimitTier, default_tiers

__all__ = ["ApiDeprecation", "Settings", "default_data_dir", "default_examples_dir"]

MiB = 1024 * 1024
MODEL_PATTERN_RE = re.compile(r"[A-Za-z0-9_.*-]{1,128}")
"""A model name, or a pattern where '*' stands for any characters (security settings, key scopes)."""


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


class ApiDeprecation(BaseModel):
    """When an API version was deprecated and when it goes away (RFC 9745 ``Deprecation``, RFC 8594 ``Sunset``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deprecated: date
    sunset: date


class Settings(BaseSettings):
    """Every knob of an mlgate server. Environment: ``MLGATE_<FIELD>`` (e.g. ``MLGATE_PORT=9000``)."""

    model_config = SettingsConfigDict(env_prefix="MLGATE_", extra="forbid", validate_default=True)

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to listen on.")
    model_repository: Path | None = Field(
        default=None,
        description="Folder of model directories, or one model directory, or one artifact file (.joblib, .pkl, "
        ".skops, .onnx); unset serves the example models, built on first use.",
    )
    allow_empty_repository: bool = Field(
        default=False,
        description="Start even when the repository folder and the registry hold no model (a registry-only "
        "server that models will be pushed to); otherwise `mlgate serve` refuses to start, with the reason.",
    )
    strict_readiness: bool = Field(
        default=False,
        description="Report the server ready only when every model loaded (else: when loading finished).",
    )
    max_body_bytes: int = Field(
        default=16 * MiB, ge=1, description="Largest request body accepted, in bytes; larger gets 413."
    )
    request_header_timeout_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="Longest a client may take to send a request's headers, seconds; then 408 and the connection "
        "is closed (mlgate serve).",
    )
    request_body_timeout_s: float = Field(
        default=60.0, gt=0, le=86400,
        description="Longest a client may take to send a request's body after its headers, seconds; then 408 and "
        "the connection is closed (mlgate serve). Large pushes over slow links may need more.",
    )
    max_connections_per_client: int = Field(
        default=64, ge=0,
        description="Open connections one client address may hold (per server process; trusted_proxies are "
        "exempt); one more is closed at once. 0: no limit.",
    )
    max_json_depth: int = Field(
        default=32, ge=2, le=1000, description="Deepest nesting of arrays/objects accepted in a JSON body."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severe log lines written: debug, info, warning or error."
    )
    log_format: Literal["auto", "console", "json"] = Field(
        default="auto", description="auto: readable on a terminal, JSON lines otherwise."
    )
    log_file: Path | None = Field(
        default=None,
        description="Also append the server log to this file, as JSON lines (next to stderr; every server "
        "process writes to it; reopened after log rotation moves it). Unset: stderr only.",
    )
    access_log: bool = Field(default=True, description="Log one line per HTTP request and per gRPC call.")

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
    drain_s: float = Field(
        default=0.0, ge=0, le=3600,
        description="On SIGTERM (or Ctrl-C), answer not ready (400) on /v2/health/ready but go on serving for this "
        "many seconds, with `Connection: close` on each answer, so load balancers take the server out of rotation "
        "before it stops listening; a second signal ends the drain early. Set it above the balancer's "
        "detection time (HAProxy: inter x fall; Kubernetes: periodSeconds x failureThreshold).",
    )
    shutdown_timeout_s: float = Field(
        default=30.0, gt=0,
        description="After the drain, how long requests in flight may take to finish before they are "
        "cancelled, in seconds; then batchers and the prediction log are flushed and the server exits.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="Send OpenTelemetry traces (HTTP requests, jobs, model calls) over OTLP/HTTP (protobuf) to "
        "this collector, e.g. `http://otel-collector:4318` (spans go to `<endpoint>/v1/traces`). Unset: the "
        "standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` variables are honoured; "
        "with neither, tracing is off and costs nothing. Needs the `otel` extra.",
    )
    otel_service_name: str = Field(
        default="mlgate", min_length=1, max_length=200,
        description="The `service.name` of the spans (`OTEL_SERVICE_NAME` wins when set).",
    )
    metrics: Literal["open", "token", "off"] = Field(
        default="open",
        description="GET /metrics (Prometheus; names every model, closed ones included): open to every caller, "
        "token (only with 'Authorization: Bearer <metrics_token>'), or off. true/false mean open/off.",
    )
    metrics_token: SecretStr | None = Field(
        default=None, min_length=16, description="The bearer token /metrics asks for when metrics = token."
    )
    cache_storage: str = Field(
        default="memory",
        description="Where models with a manifest [cache] keep their answers: `memory` (each process its own) "
        "or `redis://host:6379/0` (shared by every replica).",
    )
    workers: int = Field(
        default=1, ge=0,
        description="HTTP server processes sharing the port, each with its own copy of the models and its own "
        "batcher; 0 starts one per CPU core. With several, rate limits need shared (Redis) storage to be global.",
    )

    # -- gRPC: the V2 protocol over gRPC (mlgate.protocols.grpc) ----------------------------------
    grpc_port: int = Field(
        default=8001, ge=0, le=65535,
        description="TCP port of the KServe V2 gRPC service (on `host`), served by every HTTP process; 0: no gRPC.",
    )
    grpc_max_message_bytes: int | None = Field(
        default=None, ge=1,
        description="Largest gRPC message accepted or sent, in bytes (a larger request is refused before it is "
        "decoded, RESOURCE_EXHAUSTED); unset: `max_body_bytes`.",
    )
    grpc_tls_cert: Path | None = Field(
        default=None, description="PEM certificate chain for TLS on the gRPC port (with `grpc_tls_key`); unset: "
        "plaintext (terminate TLS in a proxy).",
    )
    grpc_tls_key: Path | None = Field(default=None, description="PEM private key of `grpc_tls_cert`.")
    grpc_stream_concurrency: int = Field(
        default=16, ge=1, le=1024,
        description="Requests of one ModelStreamInfer stream run at once (answers stay in the order sent); the "
        "next request is read once fewer are unanswered.",
    )
    # -- jobs: long inference, queued and run in the background ------------------------------------
    jobs_broker: str | None = Field(
        default=None,
        description="Where jobs are queued: unset runs them in the server itself (state in its database, "
        "resumed after a restart); `amqp://user:pass@host:5672/` (RabbitMQ) or `redis://host:6379/0` hands "
        "them to `mlgate worker` processes sharing the database.",
    )
    jobs_queue: str = Field(
        default="mlgate-jobs", min_length=1, max_length=200,
        description="Name of the broker queue (RabbitMQ queue, Redis stream) the server and workers share.",
    )
    jobs_concurrency: int = Field(
        default=4, ge=1, description="Jobs one runner (the server's own, or one `mlgate worker`) runs at once.",
    )
    jobs_lease_s: float = Field(
        default=30.0, gt=0,
        description="A running job's lease, seconds: its runner renews it; a job whose runner died is taken "
        "over once the lease ran out.",
    )
    jobs_poll_interval_s: float = Field(
        default=0.5, gt=0,
        description="How often a runner looks for jobs it was not told about (queued by another process, "
        "leases run out) and for cancellations, seconds.",
    )
    jobs_result_ttl_s: float = Field(
        default=86_400.0, gt=0,
        description="How long a finished job's result is kept, seconds; then the job is `expired`.",
    )
    jobs_webhook_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (`host` or `host:port`, exact) a job's webhook may be sent to; any other is refused "
        "at submission. Empty: no webhooks.",
    )
    jobs_webhook_secret: SecretStr | None = Field(
        default=None, min_length=32,
        description="Server key from which each API key's webhook signing secret is derived; default: a random "
        "key kept in data_dir/webhook-secret (workers on other machines need this setting).",
    )
    jobs_max_queued_per_caller: int = Field(
        default=100, ge=1,
        description="Jobs one caller may have queued or running; one more gets 429 with Retry-After.",
    )
    jobs_result_inline_bytes: int = Field(
        default=262_144, ge=0,
        description="A job's result up to this many bytes of JSON is kept in the database; a larger one is "
        "written to the artifact store (`artifact_store`) and streamed back from there, deleted when the job "
        "expires. 0: every result goes to the artifact store.",
    )
    jobs_models: list[str] = Field(
        default_factory=list,
        description="The models (fnmatch patterns, e.g. `bert-*`) whose jobs this runner takes (`mlgate worker "
        "--model`); empty: every model. Jobs of other models wait for a runner that takes them.",
    )

    # -- registry: database, artifact store, rollouts, prediction log -------------------------------
    registry_api: bool = Field(
        default=True,
        description="Serve the registry REST API (/api/v1/models, /api/v1/predictions) and the V2 repository "
        "extension (/v2/repository); never to anonymous callers (changes need the deploy right on the model, "
        "the prediction log admin). False: the operator's off switch (registry models are still served).",
    )
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

    artifact_store: str | None = Field(
        default=None,
        description="Where pushed model versions are kept: a folder or any fsspec URL (s3://bucket/prefix, "
        "memory://...); unset: data_dir/artifacts.",
    )
    registry_max_upload_bytes: int = Field(
        default=512 * MiB, ge=1, description="Largest model archive accepted by a push, in bytes; larger gets 413."
    )
    registry_max_unpacked_bytes: int = Field(
        default=2048 * MiB, ge=1, description="Largest total size of the files inside a pushed archive, in bytes."
    )
    registry_poll_interval_s: float = Field(
        default=1.0, gt=0, le=60,
        description="How often a replica checks the database for registry changes (PostgreSQL also notifies).",
    )
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="How long an old version may finish its in-flight requests before unload."
    )
    shadow_max_in_flight: int = Field(
        default=64, ge=1, description="Shadow requests running at once per server; more are skipped (logged)."
    )
    prediction_log: bool = Field(default=True, description="Record every inference request in the database.")
    prediction_log_buffer: int = Field(
        default=10_000, ge=1, description="Records held while the database is slow or down; more are dropped."
    )
    prediction_log_batch: int = Field(default=500, ge=1, description="Records written per database insert.")
    prediction_log_interval_s: float = Field(
        default=0.5, gt=0, description="Longest time a record waits in the buffer before it is written."
    )
    prediction_log_sample_rate: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="Share of requests whose inputs and outputs are logged (per model: PATCH the model).",
    )
    deprecated_api_versions: dict[str, ApiDeprecation] = Field(
        default_factory=dict,
        description='Registry API versions answered with Deprecation and Sunset headers, e.g. '
        '{"v1": {"deprecated": "2027-01-01", "sunset": "2027-07-01"}}.',
    )

    @property
    def effective_artifact_store(self) -> str:
        """``artifact_store``, or the folder ``data_dir/artifacts``."""
        return self.artifact_store or str(self.data_dir / "artifacts")

    @property
    def effective_database_url(self) -> str:
        """``database_url``, or the SQLite file ``data_dir/mlgate.db``."""
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'mlgate.db'}"

    # -- security: identities, API keys, permissions, rate limits -----------------------------------
    anonymous_models: list[str] = Field(
        default_factory=list,
        description="Models callers without credentials may use (names, or patterns with '*'); empty: none. "
        "A manifest can open its model with [access] anonymous = true.",
    )
    user_models: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Models every signed-in user may use, within their role (names or patterns); "
        "groups grant more. Admins may use every model.",
    )
    public_docs: bool = Field(
        default=True, description="Serve /docs and /openapi.json (they describe routes, never models); false: off."
    )
    jwt_secret: SecretStr | None = Field(
        default=None, min_length=32,
        description="HS256 key of the access tokens; unset: generated once into data_dir/jwt-secret. "
        "Replicas must share it.",
    )
    jwt_ttl_s: int = Field(default=900, ge=30, le=86400, description="Lifetime of an access token, seconds.")
    auth_cache_size: int = Field(
        default=10_000, ge=0, le=1_000_000,
        description="Resolved API keys and token users kept in each process (0: off; every request reads the "
        "database). Identity changes clear it on every replica within about registry_poll_interval_s.",
    )
    auth_cache_ttl_s: float = Field(
        default=5.0, ge=0, le=300,
        description="Longest time a cached credential is trusted, seconds (0: off): the bound on staleness "
        "when a replica cannot see changes (database unreachable, rows edited by hand).",
    )
    admin_username: str | None = Field(
        default=None, description="Create this admin user at start-up if it does not exist (with admin_password)."
    )
    admin_password: SecretStr | None = Field(default=None, min_length=8, description="Password of admin_username.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For is believed.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS, e.g. https://app.example.com; empty: none."
    )
    cors_allow_credentials: bool = Field(default=False, description="CORS: allow cookies and credentials.")
    hsts_max_age_s: int = Field(
        default=0, ge=0, description="Send Strict-Transport-Security with this max-age (serve over HTTPS!); 0: off."
    )
    rate_limit_enabled: bool = Field(default=True, description="Apply rate limits and quotas.")
    rate_limit_storage: str = Field(
        default="memory://",
        description="Where counters live: memory:// (this process) or redis://host:port/db (shared by replicas).",
    )
    rate_limit_key_prefix: str = Field(default="mlgate", min_length=1, description="Prefix of the counter keys.")
    rate_limit_on_storage_error: Literal["allow", "refuse"] = Field(
        default="allow",
        description="When the storage is unreachable: allow the request (logged, counted in /metrics) "
        "or refuse it with 503.",
    )
    rate_limit_error_log_interval_s: float = Field(
        default=60.0, gt=0, description="Log storage failures at most once per this many seconds."
    )
    rate_limit_tiers: dict[str, RateLimitTier] = Field(
        default_factory=default_tiers,
        description="Named tiers; 'anonymous' (per client address) and 'default' (per user: all of a user's keys "
        "and tokens together) must exist.",
    )
    rate_limit_models: dict[str, dict[str, RateLimitTier]] = Field(
        default_factory=dict,
        description="Per-model overrides: {model: {tier: limits}}; over the manifest's [rate_limit.<tier>].",
    )
    rate_limit_key_tier: str | None = Field(
        default=None,
        description="A tier (of rate_limit_tiers) that limits each API key on its own, on top of its user's "
        "total (limits and quotas count per user: all of a user's keys and tokens together); unset: none.",
    )
    max_active_keys_per_user: int = Field(
        default=20, ge=1, description="API keys a user may hold at once (not revoked, not expired); one more: 409."
    )
    login_rate_limit: str = Field(
        default="10/minute", description="Password attempts at the token route, per client address."
    )

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_switch(cls, value: Any) -> Any:
        # The setting was a boolean: keep true/false (and their environment spellings) working.
        if isinstance(value, bool):
            return "open" if value else "off"
        if isinstance(value, str) and value.lower() in {"true", "1", "yes", "false", "0", "no"}:
            return "open" if value.lower() in {"true", "1", "yes"} else "off"
        return value

    @model_validator(mode="after")
    def _metrics_token_given(self) -> Settings:
        if self.metrics == "token" and self.metrics_token is None:
            raise ValueError("metrics = token needs metrics_token (env MLGATE_METRICS_TOKEN)")
        return self

    @field_validator("rate_limit_tiers")
    @classmethod
    def _builtin_tiers_kept(cls, tiers: dict[str, RateLimitTier]) -> dict[str, RateLimitTier]:
        return {**default_tiers(), **tiers}

    @model_validator(mode="after")
    def _key_tier_known(self) -> Settings:
        if self.rate_limit_key_tier is not None and self.rate_limit_key_tier not in self.rate_limit_tiers:
            raise ValueError(f"rate_limit_key_tier {self.rate_limit_key_tier!r} is not one of rate_limit_tiers "
                             f"({', '.join(sorted(self.rate_limit_tiers))})")
        return self
    @field_validator("cache_storage")
    @classmethod
    def _cache_storage(cls, value: str) -> str:
        if value != "memory" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected memory or redis://...")
        return value

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _otlp_scheme(cls, url: str | None) -> str | None:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("expected http://host:4318 or https://... (OTLP over HTTP)")
        return url or None

    @field_validator("jobs_broker")
    @classmethod
    def _broker_scheme(cls, url: str | None) -> str | None:
        if url and not url.startswith(("amqp://", "amqps://", "redis://", "rediss://")):
            raise ValueError("expected amqp://... (RabbitMQ) or redis://... (Redis)")
        return url or None

    @field_validator("anonymous_models", "user_models")
    @classmethod
    def _model_patterns(cls, patterns: list[str]) -> list[str]:
        bad = [p for p in patterns if not MODEL_PATTERN_RE.fullmatch(p)]
        if bad:
            raise ValueError(f"not model names or patterns (letters, digits, '.', '_', '-', '*'): {bad}")
        return patterns

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            ipaddress.ip_network(proxy, strict=False)  # ValueError names the bad one
        return proxies

    # -- web: docs, playground, admin, dashboard ----------------------------------------------------
    admin_enabled: bool = Field(
        default=True, description="Serve the admin pages and the usage dashboard at /admin/ (admins sign in there)."
    )
    admin_session_secret: SecretStr | None = Field(
        default=None, min_length=32,
        description="Key that signs the admin session cookie; unset: generated once into "
        "data_dir/admin-session-secret. Replicas must share it.",
    )
    admin_session_ttl_s: int = Field(
        default=8 * 3600, ge=60, le=7 * 86400, description="Lifetime of an admin session cookie, seconds."
    )
    admin_cookie_secure: bool = Field(
        default=False, description="Mark the admin session cookie Secure (sent over HTTPS only): on behind TLS."
    )
    playground_token_ttl_s: int = Field(
        default=600, ge=30, le=3600,
        description="Lifetime, seconds, of the token the admin gives its signed-in user's playground (/ui/); "
        "the playground asks for a new one before it expires, and logout ends it at once.",
    )

    @model_validator(mode="after")
    def _grpc_tls_pair(self) -> Settings:
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise ValueError("grpc_tls_cert and grpc_tls_key go together: set both (TLS) or neither (plaintext)")
        return self

    @property
    def effective_grpc_max_message_bytes(self) -> int:
        """The largest gRPC message in bytes: ``grpc_max_message_bytes``, else ``max_body_bytes``."""
        return self.grpc_max_message_bytes if self.grpc_max_message_bytes is not None else self.max_body_bytes

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
        # The validated values themselves (model_dump would turn nested models, e.g. tiers, into dicts).
        return cls.model_construct(**{name: getattr(loaded, name) for name in cls.model_fields})
