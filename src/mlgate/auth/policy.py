"""Authorization: may this caller do this action on this model, and under which rate-limit tier?

Decisions depend only on the caller's rights and the model *name* (plus, for anonymous callers, whether
the model is open to them), never on whether the model exists. So a caller who may not use a model gets
the same 403 for it whether it exists or not, and an anonymous caller the same 401. Names that are not
valid model names (``..``, ``a/b``, look-alike unicode, trailing newlines) are refused before any lookup:
404 for a signed-in caller (no such model can exist), 401 for an anonymous one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from mlgate.access import DEFAULT_TIER, RateLimitTier
from mlgate.auth.caller import Action, Caller, matches
from mlgate.errors import Forbidden, ModelNotFound, Unauthenticated
from mlgate.model.manifest import is_valid_name

__all__ = ["CODE_EXECUTING_SUFFIXES", "ModelPolicy", "Policy"]

CODE_EXECUTING_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".py", ".pt", ".pth", ".dill", ".cloudpickle"})
"""Artifact formats whose loading runs code from the file (pickle and its relatives, Python source)."""


@dataclass(frozen=True)
class ModelPolicy:
    """What a served model says about its own access (its manifest's ``[access]`` and ``[rate_limit]``)."""

    anonymous: bool = False
    rate_limits: Mapping[str, RateLimitTier] = field(default_factory=dict)


class Policy:
    """The server's access rules.

    ``anonymous_models``: names or patterns open to anonymous callers. ``lookup(name)``: the served model's
    own policy, None when unknown. ``names()``: the served model names. ``tiers`` and ``model_tiers``: the
    rate-limit tiers, and per-model overrides (``{model: {tier: limits}}``) that win over the manifest's.
    ``key_tier``: the tier that limits each API key on its own, on top of its user's total (None: none).
    """

    def __init__(self, *, anonymous_models: Sequence[str] = (),
                 lookup: Callable[[str], ModelPolicy | None] = lambda name: None,
                 names: Callable[[], Iterable[str]] = tuple,
                 tiers: Mapping[str, RateLimitTier] | None = None,
                 model_tiers: Mapping[str, Mapping[str, RateLimitTier]] | None = None,
                 key_tier: str | None = None) -> None:
        self.anonymous_models = tuple(anonymous_models)
        self.key_tier_name = key_tier
        self.lookup = lookup
        self.names = names
        self.tiers = dict(tiers or {DEFAULT_TIER: RateLimitTier()})
        self.model_tiers = dict(model_tiers or {})

    def open_to_anonymous(self, model: str) -> bool:
        """Whether anonymous callers may predict with ``model`` (setting ``anonymous_models`` or the manifest's
        ``[access] anonymous``); never for an invalid name.
        """
        if not is_valid_name(model):
            return False
        if matches(self.anonymous_models, model):
            return True
        policy = self.lookup(model)
        return policy is not None and policy.anonymous

    def any_open_to_anonymous(self) -> bool:
        """Whether any served model is open to anonymous callers."""
        return any(self.open_to_anonymous(name) for name in self.names())

    def check(self, caller: Caller, action: Action, model: str | None = None) -> None:
        """Raise Unauthenticated (401), Forbidden (403) or ModelNotFound (404, invalid names) unless allowed.

        ``model=None`` asks for a server-wide right (the action on every model).
        """
        if model is not None and not is_valid_name(model):
            if caller.anonymous:
                raise Unauthenticated()
            raise ModelNotFound(model)
        if caller.anonymous:
            if action is Action.PREDICT and model is not None and self.open_to_anonymous(model):
                return
            raise Unauthenticated()
        if not caller.may(action, model):
            if model is None:
                raise Forbidden(f"this needs the '{action}' right on every model")
            raise Forbidden(f"you may not {action} on model '{model}'", field="model_name")

    def allows(self, caller: Caller, action: Action, model: str) -> bool:
        """``check`` as a yes/no answer (for lists and pages that show only what the caller may use)."""
        try:
            self.check(caller, action, model)
        except (Unauthenticated, Forbidden, ModelNotFound):
            return False
        return True

    def check_any(self, caller: Caller) -> None:
        """For routes about the server, not a model (``GET /v2``): any signed-in caller, or an anonymous one
        when some served model is open to anonymous callers."""
        if caller.anonymous and not self.any_open_to_anonymous():
            raise Unauthenticated()

    def check_artifact(self, caller: Caller, model: str, artifact: str) -> None:
        """Refuse (403) an artifact whose format runs code on load unless the caller may deploy ``model``.

        Pickle, joblib, torch ``.pt`` files and Python source run arbitrary code in the server when loaded;
        prefer ONNX, or ``.skops`` for scikit-learn, which load without running code.
        """
        if PurePosixPath(artifact).suffix.lower() in CODE_EXECUTING_SUFFIXES and not caller.may(Action.DEPLOY, model):
            raise Forbidden(f"artifact '{PurePosixPath(artifact).name}' is a format that runs code when loaded; "
                            f"only callers with the deploy right on model '{model}' may supply it "
                            "(use ONNX or skops instead)", field="artifact")

    def key_tier(self, caller: Caller) -> tuple[str, RateLimitTier] | None:
        """The tier that limits the caller's API key on its own (setting rate_limit_key_tier), on top of the
        user's total; None for callers without a key, or when the setting is unset."""
        if caller.key_id is None or self.key_tier_name is None or self.key_tier_name not in self.tiers:
            return None
        return self.key_tier_name, self.tiers[self.key_tier_name]

    def tier(self, caller: Caller, model: str | None) -> tuple[str, RateLimitTier]:
        """The caller's tier name and its limits on ``model``: settings override > manifest > the tier.

        A key naming a tier the settings no longer have falls back to the default tier.
        """
        name = caller.tier if caller.tier in self.tiers else DEFAULT_TIER
        if model is not None:
            override = self.model_tiers.get(model, {}).get(name)
            if override is not None:
                return name, override
            policy = self.lookup(model)
            if policy is not None and name in policy.rate_limits:
                return name, policy.rate_limits[name]
        return name, self.tiers.get(name, RateLimitTier())
