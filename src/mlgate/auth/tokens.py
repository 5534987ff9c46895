"""Short-lived access tokens (JWT, HS256) issued by the OAuth2 password flow, for the web UI and the CLI.

Claims: ``sub`` (the user id), ``name``, ``iss`` and ``aud`` (``mlgate``), ``iat``, ``nbf``, ``exp`` and a
random ``jti``. Verification accepts HS256 only (so ``alg: none`` and algorithm confusion fail), requires
every one of those claims, and allows ``LEEWAY_S`` seconds of clock difference between replicas. The token
carries no rights: the user's role and groups are read from the database on every request, so a demoted or
deactivated user loses them at once.

A **playground token** (``issue(..., session_stamp=...)``, made by the admin for its signed-in user so that the
playground at ``/ui/`` works without an API key) carries two more claims: ``use: "playground"`` (the
authenticator grants it ``predict`` only) and ``ses``, a digest of the user's session stamp when it was issued;
it is refused once that stamp changes (admin logout, a change of role or activation), before its
``exp``.

The signing key is ``jwt_secret`` from the settings or, when unset, a random key generated once and kept in
``data_dir/jwt-secret`` (mode 0600). There is no built-in default key.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt

__all__ = ["ALGORITHM", "AUDIENCE", "ISSUER", "PLAYGROUND_USE", "TokenClaims", "TokenIssuer", "load_or_create_secret",
           "stamp_digest"]

ALGORITHM = "HS256"
ISSUER = "mlgate"
AUDIENCE = "mlgate"
SECRET_FILE = "jwt-secret"
MIN_SECRET_CHARS = 32
LEEWAY_S = 5
PLAYGROUND_USE = "playground"
"""The ``use`` claim of a playground token (``predict`` only, ends with the admin session)."""


def stamp_digest(session_stamp: str) -> str:
    """What a token carries of a user's session stamp (a digest: the stamp itself is a time)."""
    return hashlib.sha256(session_stamp.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: the user id, and for a playground token its ``use`` and session digest."""
    user_id: int
    use: str | None = None
    session: str | None = None


def load_or_create_secret(data_dir: Path, name: str = SECRET_FILE, setting: str = "MLGATE_JWT_SECRET") -> str:
    """The key in ``data_dir/<name>`` (``jwt-secret``), created (random, 0600) if absent. Safe against a racing
    replica. ``setting`` is the variable named in the error about a short key."""
    path = data_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may be writing it this very moment
            secret = path.read_text(encoding="ascii").strip()
            if secret:
                break
            time.sleep(0.02)
    else:
        secret = secrets.token_urlsafe(48)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secret + "\n")
    if len(secret) < MIN_SECRET_CHARS:
        raise RuntimeError(f"{path} holds a key shorter than {MIN_SECRET_CHARS} characters; delete it or "
                           f"set {setting}")
    return secret


@dataclass(frozen=True)
class TokenIssuer:
    """Issues and verifies access tokens with one secret and lifetime (seconds)."""

    secret: str
    ttl_s: int

    def issue(self, user_id: int, username: str, *, session_stamp: str | None = None, ttl_s: int | None = None) -> str:
        """A signed access token (JWT, HS256) for the user, valid for ``ttl_s`` (default: the issuer's) seconds
        from now. With ``session_stamp``: a playground token (see the module), ended with that session."""
        now = int(time.time())
        claims: dict[str, object] = {
            "sub": str(user_id), "name": username, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now,
            "exp": now + (self.ttl_s if ttl_s is None else ttl_s), "jti": uuid.uuid4().hex}
        if session_stamp is not None:
            claims |= {"use": PLAYGROUND_USE, "ses": stamp_digest(session_stamp)}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def claims(self, token: str) -> TokenClaims | None:
        """The claims of a valid, unexpired token signed with our key; None for anything else."""
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER, leeway=LEEWAY_S,
                options={"require": ["sub", "iss", "aud", "iat", "nbf", "exp", "jti"]},
            )
        except jwt.PyJWTError:
            return None
        sub, use, session = claims.get("sub"), claims.get("use"), claims.get("ses")
        if not isinstance(sub, str) or not sub.isdigit():
            return None
        if use is not None and (use != PLAYGROUND_USE or not isinstance(session, str)):
            return None  # a use we do not know grants nothing
        return TokenClaims(int(sub), use, session if use else None)

    def verify(self, token: str) -> int | None:
        """The user id of a valid, unexpired token signed with our key; None for anything else."""
        claims = self.claims(token)
        return claims.user_id if claims else None
