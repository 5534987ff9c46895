"""Inference jobs: one row per job submitted through ``POST /api/v1/jobs`` or ``Prefer: respond-async``.

The row is the job's only state: the request body, who owns it, where it is in its life
(``queued -> running -> succeeded | failed | cancelled``, later ``expired``), its progress, its result (the
V2 response body) or error, and the lease of the runner executing it. ``seq`` orders the queue and the
pages of ``GET /api/v1/jobs``; ``id`` is the public, unguessable id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mlgate.db.base import Base, FloatValue, UTCDateTime

__all__ = ["JOB_STATUSES", "TERMINAL", "JobRecord"]

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")
"""Every status a job may have."""
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
"""The statuses a job never leaves (but ``expired``, which a finished job reaches when its result is dropped)."""

BigId = BigInteger().with_variant(Integer(), "sqlite")


class JobRecord(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_owner_seq", "owner", "seq"), Index("ix_jobs_status_seq", "status", "seq"))

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    owner: Mapped[str] = mapped_column(String(200))
    """Whose job: ``user:<id>`` (every key of a user shares its jobs)."""
    actor: Mapped[str] = mapped_column(String(200))
    """How the prediction log names the submitter (``key:<prefix> (user:<name>)``)."""
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The version asked for (None: the model's current routing); the answer's ``model_version`` says which ran."""
    protocol: Mapped[str] = mapped_column(String(16))
    """The wire protocol of ``request`` and of the result: ``v2``, ``v1`` or ``openai``."""
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float | None] = mapped_column(FloatValue, nullable=True)
    """0..1 as the model last reported it; 1 once succeeded."""
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The inference request body, as the protocol's synchronous route takes it (JSON)."""
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    """The result body, when it is at most ``jobs_result_inline_bytes`` of JSON; else None and ``result_uri``."""
    result_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Where a larger result body (JSON) is kept in the artifact store (``mlgate.catalog.store``)."""
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    """``{"status", "code", "error", "field"}`` of a failed job."""
    timeout_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    webhook: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    traceparent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The W3C trace context of the submitting request (tracing on): the job's run continues that trace."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """How often a runner claimed the job (a claim after a runner died counts again)."""
    runner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The runner (``host:pid``) holding the job while it runs."""
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """While running: the runner renews this; past it, the runner is presumed dead and the job may be claimed."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """When a finished job's result is dropped (status ``expired``)."""
