"""Who is calling, and what they may do: actions, roles, model scopes, and the ``Caller`` of a request.

Actions: ``predict`` (inference, model metadata and readiness), ``deploy`` (push, promote, roll back
models), ``admin`` (users, groups, keys of others). A role grants actions: ``user`` predict, ``deployer``
predict and deploy, ``admin`` all three. Models are granted by name or pattern (``*`` = any characters):
admins get every model, others the server's ``user_models`` plus their groups' models. An API key narrows
its user's rights to its own scopes (models and actions); it never widens them.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from mlgate.model.manifest import is_valid_name
from mlgate.settings import MODEL_PATTERN_RE

__all__ = ["ROLE_ACTIONS", "Action", "Caller", "CallerKind", "Role", "matches", "valid_pattern"]


class Action(enum.StrEnum):
    """What a caller may do with a model: ``predict`` (inference, metadata), ``deploy`` (push, promote,
    traffic, load/unload), ``admin`` (everything, users and keys included).
    """
    PREDICT = "predict"
    DEPLOY = "deploy"
    ADMIN = "admin"


class Role(enum.StrEnum):
    """A user's role; it bounds the actions of the user's keys (``ROLE_ACTIONS``)."""
    USER = "user"
    DEPLOYER = "deployer"
    ADMIN = "admin"


ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.USER: frozenset({Action.PREDICT}),
    Role.DEPLOYER: frozenset({Action.PREDICT, Action.DEPLOY}),
    Role.ADMIN: frozenset(Action),
}


class CallerKind(enum.StrEnum):
    """How a caller authenticated: not at all, with an API key, or with an access token."""
    ANONYMOUS = "anonymous"
    KEY = "key"
    TOKEN = "token"


def valid_pattern(pattern: str) -> bool:
    """A model name, or a pattern of name characters and ``*``."""
    return bool(MODEL_PATTERN_RE.fullmatch(pattern))


def matches(patterns: Iterable[str], model: str) -> bool:
    """Whether a valid model name ``model`` matches one of ``patterns`` (case-sensitive, whole name)."""
    return _matches(tuple(patterns), model)


@functools.lru_cache(maxsize=4096)  # asked on every request, of a few (patterns, model) pairs
def _matches(patterns: tuple[str, ...], model: str) -> bool:
    return is_valid_name(model) and any(fnmatchcase(model, p) for p in patterns if valid_pattern(p))


@dataclass(frozen=True)
class Caller:
    """The identity behind a request, resolved once by the authenticator.

    ``actions`` are the caller's effective actions (role and key scopes intersected). ``model_scopes`` is a
    tuple of pattern sets, each of which must match a model for the caller to use it (the user's grants,
    then the key's scopes). ``address`` is the client address (after trusted proxies). Anonymous callers
    have no actions here: what they may use is decided per model by the policy.
    """

    kind: CallerKind
    address: str
    user_id: int | None = None
    username: str | None = None
    role: Role | None = None
    key_id: int | None = None
    key_prefix: str | None = None
    actions: frozenset[Action] = frozenset()
    model_scopes: tuple[tuple[str, ...], ...] = field(default=())
    tier: str = "anonymous"

    @property
    def anonymous(self) -> bool:
        """Whether the caller sent no credentials."""
        return self.kind is CallerKind.ANONYMOUS

    @property
    def unrestricted(self) -> bool:
        """Every scope allows every model (server-wide operations need this). False without scopes."""
        return bool(self.model_scopes) and all("*" in scope for scope in self.model_scopes)

    def may(self, action: Action, model: str | None = None) -> bool:
        """Whether this (authenticated) caller may do ``action`` on ``model``.

        ``model=None`` asks for a server-wide right: the action with no model restriction. Always False for
        anonymous callers (the policy decides those per model).
        """
        if self.anonymous or action not in self.actions or not self.model_scopes:
            return False  # a caller built without scopes may use nothing (fail closed)
        if model is None:
            return self.unrestricted
        return all(matches(scope, model) for scope in self.model_scopes)

    @property
    def rate_identity(self) -> str:
        """What rate limits and quotas count against: the user (all their keys and tokens together, so that
        more keys do not mean more budget), or the client address of an anonymous caller."""
        if self.user_id is not None:
            return f"user:{self.user_id}"
        if self.key_id is not None:
            return f"key:{self.key_id}"
        return f"addr:{self.address}"

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        if self.key_prefix is not None:
            return f"key:{self.key_prefix} (user:{self.username})"
        if self.username is not None:
            return f"user:{self.username}"
        return "anonymous"
