"""Password hashing with argon2id (pwdlib's recommended parameters).

``verify`` always spends one hash verification, also for unknown users (against a dummy hash), so that the
time of a failed login does not tell whether the user exists.
"""

from __future__ import annotations

from functools import lru_cache

from pwdlib import PasswordHash

__all__ = ["MIN_PASSWORD_LENGTH", "check_password_strength", "hash_password", "verify_password"]

MIN_PASSWORD_LENGTH = 8


@lru_cache(maxsize=1)
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash("mlgate dummy password, never valid")


def check_password_strength(password: str) -> None:
    """Raise ValueError for a password that is too short or blank."""
    if len(password) < MIN_PASSWORD_LENGTH or not password.strip():
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string, salt included) of ``password``."""
    return _hasher().hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches ``password_hash``; None (unknown user) costs the same and is False."""
    if password_hash is None:
        _hasher().verify(password, _dummy_hash())
        return False
    try:
        return _hasher().verify(password, password_hash)
    except Exception:  # noqa: BLE001 - a corrupt or foreign hash string is a failed login, not a crash
        return False
