"""Where a request without a version goes: the model's route (production version, canary split, shadow).

A route is replaced as a whole (one assignment), so a request sees either the old route or the new one,
never a mix. Canary selection is sticky when the request has a routing key (the caller's identity or the
``X-Routing-Key`` header): the key's SHA-256 puts it in one of 10,000 buckets, the same on every replica.
Without a key each request is drawn at random.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["TrafficRoute", "canary_bucket"]


def canary_bucket(model: str, key: str) -> float:
    """The percentile (0 <= p < 100, in steps of 0.01) that ``key`` falls into for ``model``."""
    digest = hashlib.sha256(f"{model}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 / 100


@dataclass(frozen=True, slots=True)
class TrafficRoute:
    """``production``: the version answering requests without one; ``aliases``: name -> version;
    ``canary`` takes ``canary_percent`` (0-100) of those requests; ``shadow`` gets a copy of each."""

    production: str
    aliases: Mapping[str, str] = field(default_factory=dict)
    canary: str | None = None
    canary_percent: float = 0.0
    shadow: str | None = None
    registered: frozenset[str] = frozenset()
    """Every version the registry holds for the model, served or not (for a helpful 404)."""

    def pick(self, model: str, key: str | None = None) -> str:
        """The version for a request without one: the canary for its share of the traffic, else production."""
        if self.canary is None or self.canary_percent <= 0:
            return self.production
        draw = canary_bucket(model, key) if key else random.random() * 100  # noqa: S311 - not security
        return self.canary if draw < self.canary_percent else self.production

    def versions(self) -> set[str]:
        """Every version this route may send traffic to (all must be loaded before it is installed)."""
        found = {self.production, *self.aliases.values()}
        found.update(v for v in (self.canary, self.shadow) if v is not None)
        return found
