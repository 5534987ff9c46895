"""Server-wide key/value facts kept in the database (e.g. when the schema was first created)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mlgate.db.base import Base, UTCDateTime, utcnow

__all__ = ["ServerMeta"]


class ServerMeta(Base):
    """Server-wide key/value facts (e.g. when the schema was first created)."""
    __tablename__ = "server_meta"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
