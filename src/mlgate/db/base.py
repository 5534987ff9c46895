"""The declarative base every table derives from, with a naming convention for constraints.

The convention gives every index and constraint a stable name, so Alembic migrations work the same on
SQLite and PostgreSQL (SQLAlchemy docs, "Configuring Constraint Naming Conventions").
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Float, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

__all__ = ["Base", "FloatValue", "UTCDateTime", "utcnow"]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The declarative base of every table, with a naming convention for constraints (stable migration names)."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        """Refuse naive datetimes; store the value in UTC."""
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        """Read back timezone-aware (UTC), whatever the backend kept."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class FloatValue(TypeDecorator[float]):
    """A float column read back as a Python float on every backend: SQLite's ``UPDATE ... RETURNING`` gives
    the value before the column's type affinity, so a stored 1.0 came back as the integer 1."""

    impl = Float
    cache_ok = True

    def process_result_value(self, value: float | None, dialect: object) -> float | None:
        """``float(value)``, None kept."""
        return None if value is None else float(value)
