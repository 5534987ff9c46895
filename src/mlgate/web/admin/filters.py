"""A time-range filter for sqladmin's lists: rows of the last 15 minutes, hour, day or week."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

__all__ = ["RecentFilter"]

RANGES = {"15m": ("Last 15 minutes", timedelta(minutes=15)), "1h": ("Last hour", timedelta(hours=1)),
          "24h": ("Last 24 hours", timedelta(days=1)), "7d": ("Last 7 days", timedelta(days=7))}


class RecentFilter:
    """Keeps rows whose ``column`` (a UTC time) is within the chosen range of now; query parameter ``<column>``
    = ``15m``, ``1h``, ``24h`` or ``7d`` (anything else: no filter)."""

    has_operator = False
    template = "sqladmin/filters/lookup_filter.html"

    def __init__(self, column: InstrumentedAttribute[datetime], title: str = "Time") -> None:
        self.column = column
        self.title = title
        self.parameter_name = column.key

    async def lookups(self, request: Request, model: Any, run_query: Callable[[Select[Any]], Any]
                      ) -> list[tuple[str, str]]:
        """The ranges offered (last hour, day, week...)."""
        return [(key, label) for key, (label, _) in RANGES.items()]

    async def get_filtered_query(self, query: Select[Any], value: Any, model: Any) -> Select[Any]:
        """``query`` limited to rows newer than the chosen range; unchanged for an unknown value."""
        if value not in RANGES:
            return query
        return query.filter(self.column >= datetime.now(UTC) - RANGES[value][1])
