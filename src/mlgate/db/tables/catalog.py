"""Tables of the model registry: models, their immutable versions, aliases with their history, traffic
(canary and shadow), and the change log that replicas follow.

A version's artifact is an archive in the artifact store (``artifact_uri``), checked by its SHA-256
(``checksum``). Aliases (``production``, ``staging``, any name) point at a version; every move of an alias
is appended to ``model_alias_history``, which rollback walks back. Each change to the registry appends a
row to ``registry_changes``; replicas compare its highest id with the one they last applied.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mlgate.db.base import Base, UTCDateTime, utcnow

__all__ = ["AliasHistory", "ModelAlias", "ModelRecord", "ModelTraffic", "ModelVersionRecord", "RegistryChange"]

# SQLite only auto-increments INTEGER PRIMARY KEY columns; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ModelRecord(Base):
    """A model of the catalog (the database-backed model registry) and its per-model settings."""
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    log_sample_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersionRecord(Base):
    """An immutable version of a model: runtime, artifact URI and checksum, manifest."""
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(128))
    runtime: Mapped[str] = mapped_column(String(64))
    artifact_uri: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64), doc="SHA-256 of the archive, hex.")
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, doc="The model.toml (or MLmodel) as served.")
    created_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelAlias(Base):
    """A name (``production``, ``staging``...) pointing at a version of a model."""
    __tablename__ = "model_aliases"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AliasHistory(Base):
    """Where an alias pointed before, newest last (what rollback goes back to)."""
    __tablename__ = "model_alias_history"
    __table_args__ = (Index("ix_model_alias_history_model_id_alias", "model_id", "alias", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    changed_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelTraffic(Base):
    """Per model: a canary version taking ``canary_percent`` of the traffic, and a shadow version."""

    __tablename__ = "model_traffic"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    canary_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    canary_percent: Mapped[float] = mapped_column(Float, default=0.0)
    shadow_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RegistryChange(Base):
    """The change log: one row per catalog change, which replicas follow (``mlgate.catalog.follower``)."""
    __tablename__ = "registry_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128))
    what: Mapped[str] = mapped_column(String(256))
    by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
