"""The audit log: one row per change to users, groups, keys, models and aliases (who, what, when, from where).

Record a change in the same transaction as the change itself, so that neither exists without the other::

    async with database.session() as session:
        session.add(alias)
        record_audit(session, actor="user:alice", action="alias.set", target="churn@production",
                     detail={"version": "3"}, client="203.0.113.7", request_id="...")

``actor`` is who did it (``user:<name>``, ``key:<prefix> (user:<name>)``, ``cli:<os user>``, ``system``);
``action`` a dotted verb (``user.create``, ``key.revoke``, ``model.push``, ``alias.set``); ``target`` what was
changed; ``client`` the client address (or ``local`` for the CLI). Never put secrets in ``detail``.
``Actor`` carries who, from where and in which request (``mlgate.db.queries.catalog`` takes one for each change).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from mlgate.db.base import Base, UTCDateTime, utcnow

__all__ = ["Actor", "AuditEntry", "record_audit"]


@dataclass(frozen=True)
class Actor:
    """Who makes a change, for the audit log: ``name`` (e.g. ``user:alice``), client address, request id."""

    name: str
    client: str | None = None
    request_id: str | None = None


class AuditEntry(Base):
    """One audited change: who (actor, client address, request id), what (action, target) and when."""
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(256))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)


def record_audit(session: AsyncSession, *, actor: str, action: str, target: str,
                 detail: Mapping[str, Any] | None = None, client: str | None = None,
                 request_id: str | None = None) -> AuditEntry:
    """Add an audit entry to ``session`` (written when its transaction commits) and return it."""
    entry = AuditEntry(at=utcnow(), actor=actor[:200], action=action[:64], target=target[:256],
                       detail=dict(detail or {}), client=client[:64] if client else None,
                       request_id=request_id[:128] if request_id else None)
    session.add(entry)
    return entry
