"""The authorization policy (``mlgate.auth.policy``) over plain callers: no app, no database."""

from __future__ import annotations

import pytest

from mlgate.access import DEFAULT_TIER, RateLimitTier
from mlgate.auth.caller import ROLE_ACTIONS, Action, Caller, CallerKind, Role
from mlgate.auth.policy import ModelPolicy, Policy
from mlgate.errors import Forbidden, ModelNotFound, Unauthenticated

ANONYMOUS = Caller(CallerKind.ANONYMOUS, "198.51.100.7")


def keyed(role: Role = Role.USER, *scopes: tuple[str, ...], tier: str = DEFAULT_TIER) -> Caller:
    return Caller(CallerKind.KEY, "198.51.100.8", user_id=1, username="ann", role=role, key_id=7,
                  key_prefix="mlg_abc", actions=ROLE_ACTIONS[role], model_scopes=scopes or (("*",),), tier=tier)


SERVED = {"open-demo": ModelPolicy(anonymous=True), "churn": ModelPolicy(
    rate_limits={"gold": RateLimitTier(requests="5/minute")})}


def policy(**kwargs: object) -> Policy:
    return Policy(lookup=SERVED.get, names=lambda: list(SERVED), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", ["open-demo", "churn", "not-served"])
def test_anonymous_callers_get_only_models_open_to_them_and_the_same_401_otherwise(model: str) -> None:
    rules = policy(anonymous_models=["public-*"])
    if model == "open-demo":
        rules.check(ANONYMOUS, Action.PREDICT, model)  # the manifest opens it
    else:
        with pytest.raises(Unauthenticated):
            rules.check(ANONYMOUS, Action.PREDICT, model)
    rules.check(ANONYMOUS, Action.PREDICT, "public-anything")  # a pattern, served or not
    for action in (Action.DEPLOY, Action.ADMIN):
        with pytest.raises(Unauthenticated):
            rules.check(ANONYMOUS, action, "open-demo")
    with pytest.raises(Unauthenticated):
        rules.check(ANONYMOUS, Action.PREDICT)


@pytest.mark.parametrize("name", ["..", "a/b", "churn\n", "chur\u0578", "", "x" * 300])
def test_invalid_names_are_refused_before_any_lookup(name: str) -> None:
    looked_up: list[str] = []
    rules = Policy(lookup=lambda n: looked_up.append(n) or None, anonymous_models=["*"])  # type: ignore[func-returns-value]
    with pytest.raises(Unauthenticated):
        rules.check(ANONYMOUS, Action.PREDICT, name)
    with pytest.raises(ModelNotFound):
        rules.check(keyed(), Action.PREDICT, name)
    assert not rules.open_to_anonymous(name) and looked_up == []


def test_roles_and_scopes_decide_for_signed_in_callers_whether_the_model_exists_or_not() -> None:
    rules = policy()
    user = keyed(Role.USER, ("churn*",))
    rules.check(user, Action.PREDICT, "churn")
    for model in ("fraud", "does-not-exist"):  # the same 403 for a model that exists and one that does not
        with pytest.raises(Forbidden) as refused:
            rules.check(user, Action.PREDICT, model)
        assert refused.value.field == "model_name" and model in refused.value.message
    with pytest.raises(Forbidden):
        rules.check(user, Action.DEPLOY, "churn")
    with pytest.raises(Forbidden) as server_wide:
        rules.check(user, Action.PREDICT)  # scoped: not every model
    assert "every model" in server_wide.value.message
    rules.check(keyed(Role.USER), Action.PREDICT)  # unscoped
    rules.check(keyed(Role.ADMIN), Action.ADMIN)
    narrowed = keyed(Role.DEPLOYER, ("churn*", "fraud"), ("churn-eu",))  # every scope must match
    rules.check(narrowed, Action.DEPLOY, "churn-eu")
    assert not rules.allows(narrowed, Action.DEPLOY, "churn")
    assert not rules.allows(Caller(CallerKind.KEY, "x", actions=frozenset(Action)), Action.PREDICT, "churn")


def test_check_any_needs_a_caller_or_a_model_open_to_anonymous_callers() -> None:
    policy().check_any(ANONYMOUS)
    closed = Policy(lookup=lambda name: None, names=lambda: ["churn"])
    with pytest.raises(Unauthenticated):
        closed.check_any(ANONYMOUS)
    closed.check_any(keyed())


@pytest.mark.parametrize(("artifact", "needs_deploy"), [
    ("model.pkl", True), ("dir/MODEL.Joblib", True), ("model.py", True), ("weights.pt", True),
    ("model.onnx", False), ("model.skops", False), ("pkl.onnx", False),
])
def test_code_executing_artifacts_need_the_deploy_right(artifact: str, needs_deploy: bool) -> None:
    rules = policy()
    rules.check_artifact(keyed(Role.DEPLOYER), "churn", artifact)
    if needs_deploy:
        with pytest.raises(Forbidden) as refused:
            rules.check_artifact(keyed(Role.USER), "churn", artifact)
        assert refused.value.field == "artifact"
    else:
        rules.check_artifact(keyed(Role.USER), "churn", artifact)


def test_the_tier_comes_from_settings_overrides_then_the_manifest_then_the_tier() -> None:
    tiers = {DEFAULT_TIER: RateLimitTier(requests="60/minute"), "gold": RateLimitTier(requests="600/minute")}
    rules = policy(tiers=tiers, model_tiers={"fraud": {"gold": RateLimitTier(requests="1/second")}})
    gold = keyed(tier="gold")
    assert rules.tier(gold, "churn") == ("gold", RateLimitTier(requests="5/minute"))  # the manifest's
    assert rules.tier(gold, "fraud") == ("gold", RateLimitTier(requests="1/second"))  # the settings' override
    assert rules.tier(gold, "other") == ("gold", tiers["gold"])
    assert rules.tier(gold, None) == ("gold", tiers["gold"])
    assert rules.tier(keyed(tier="platinum"), "churn") == (DEFAULT_TIER, tiers[DEFAULT_TIER])  # tier gone
    assert rules.tier(keyed(tier="platinum"), "churn")[1].requests == "60/minute"
