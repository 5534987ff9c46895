"""API keys: ``mlg_<prefix>_<secret>``, made once, stored as a SHA-256 hash, found by their prefix.

The prefix (12 hex digits) is not secret: it is shown in lists and logs and names the key row. The secret
is 32 random bytes (URL-safe base64, 43 characters), so a plain SHA-256 of the whole key is enough (no
password hashing needed for 256 bits of entropy). Comparison is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = ["KEY_MARK", "NewKey", "hash_key", "key_matches", "new_key", "parse_key"]

KEY_MARK = "mlg_"
_KEY_RE = re.compile(r"mlg_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class NewKey:
    """A key just made: ``key`` is shown to its owner once and never stored."""

    key: str
    prefix: str
    secret_hash: str


def hash_key(key: str) -> str:
    """Hex SHA-256 of the whole key."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def new_key() -> NewKey:
    """A new API key: ``mlg_<12 hex>_<43 url-safe chars>`` (256 bits of secret), its public prefix and its hash."""
    prefix = f"{KEY_MARK}{secrets.token_hex(6)}"
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, prefix=prefix, secret_hash=hash_key(key))


def parse_key(value: str) -> str | None:
    """The prefix (``mlg_<12 hex>``) of a well-formed key, else None."""
    match = _KEY_RE.fullmatch(value)
    return f"{KEY_MARK}{match.group(1)}" if match else None


def key_matches(key: str, secret_hash: str) -> bool:
    """Constant-time check of ``key`` against its stored hash."""
    return hmac.compare_digest(hash_key(key), secret_hash)
