"""Access and rate-limit configuration shared by the settings and the model manifests.

``RateLimitTier`` is one set of limits (a tier): how many requests, and how many rows (or tokens), a caller
may spend per window, plus daily quotas. ``ModelAccess`` is the ``[access]`` table of a manifest. Limits are
written in the ``limits`` library's notation, several separated by ``;``: ``"60/minute;1000/hour"``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ANONYMOUS_TIER", "DEFAULT_TIER", "ModelAccess", "RateLimitTier", "default_tiers", "refuse_bool"]

ANONYMOUS_TIER = "anonymous"
"""The tier of callers without credentials, counted per client address."""
DEFAULT_TIER = "default"
"""The tier of API keys (unless a key names another) and signed-in users, counted per key or user."""


class RateLimitTier(BaseModel):
    """Limits of one tier. Empty strings and None mean "no limit of this kind".

    ``requests`` and ``rows`` are sliding windows (the ``limits`` library's sliding window counter):
    ``requests`` costs 1 per request, ``rows`` costs the batch size of a V2/V1 request (the first dimension
    of its inputs) or the tokens of an OpenAI request. ``daily_requests`` and ``daily_rows`` are quotas over
    a fixed 24-hour window that starts at the first request.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: str = Field(default="", description='Requests per window, e.g. "60/minute;1000/hour".')
    rows: str = Field(default="", description='Rows (or tokens) per window, e.g. "6000/minute".')
    daily_requests: int | None = Field(default=None, ge=0, description="Requests per day (quota).")
    daily_rows: int | None = Field(default=None, ge=0, description="Rows (or tokens) per day (quota).")

    @field_validator("daily_requests", "daily_rows", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        return refuse_bool(value)

    @field_validator("requests", "rows")
    @classmethod
    def _parses(cls, value: str) -> str:
        if value.strip():
            from limits import parse_many  # here, not at import: model worker processes never need it

            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f'not a rate limit like "60/minute;1000/hour": {value!r}') from exc
        return value


def refuse_bool(value: Any) -> Any:
    """A ``mode="before"`` check for number fields: pydantic reads ``true`` as 1, TOML and JSON callers mean no
    number by it."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
    return value


def default_tiers() -> dict[str, RateLimitTier]:
    """The built-in tiers: ``anonymous`` (per client address) and ``default`` (per key or user)."""
    return {
        ANONYMOUS_TIER: RateLimitTier(requests="120/minute", rows="6000/minute"),
        DEFAULT_TIER: RateLimitTier(requests="1200/minute", rows="120000/minute"),
    }


class ModelAccess(BaseModel):
    """The ``[access]`` table of a manifest: who may use the model beyond what the server grants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    anonymous: bool = Field(
        default=False,
        description="Callers without credentials may use the model (inference, metadata, readiness).",
    )
