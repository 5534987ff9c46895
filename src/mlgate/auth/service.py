"""``SecurityService``: the authenticator, policy, rate limits and client-address resolver of one app, built once.

The app's lifespan calls ``build_security`` after the database is ready and keeps the result in its
``ServerState``; the HTTP layer (``mlgate.protocols.security``) applies it to each request in the fixed order
authenticate -> authorize -> rate limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from mlgate.auth.authenticator import Authenticator, AuthMetrics
from mlgate.auth.caller import Role
from mlgate.auth.client import ClientAddressResolver
from mlgate.auth.policy import ModelPolicy, Policy
from mlgate.auth.store import Actor, AuthStore
from mlgate.auth.tokens import TokenIssuer, load_or_create_secret
from mlgate.db.engine import Database
from mlgate.errors import Conflict, MlgateError
from mlgate.inference.registry import ModelRegistry
from mlgate.model.manifest import ModelManifest
from mlgate.ratelimit.limiter import RateLimitMetrics, RateLimits
from mlgate.settings import Settings

__all__ = ["SecurityService", "build_security", "ensure_first_admin", "registry_policies"]

log = structlog.get_logger("mlgate.auth")


@dataclass(frozen=True)
class SecurityService:
    """Everything one app's security needs, built once by ``build_security``: settings, the identity store,
    the token issuer, the authenticator, the policy and the rate limits.
    """
    settings: Settings
    store: AuthStore
    tokens: TokenIssuer
    authenticator: Authenticator
    policy: Policy
    limits: RateLimits
    addresses: ClientAddressResolver


def build_security(settings: Settings, database: Database, *,
                   lookup: Callable[[str], ModelPolicy | None] = lambda name: None,
                   names: Callable[[], Iterable[str]] = tuple,
                   auth_metrics: AuthMetrics | None = None,
                   limit_metrics: RateLimitMetrics | None = None) -> SecurityService:
    """Everything security needs, from settings. ``lookup``/``names`` describe the served models; the
    metrics objects (made once per app, on its CollectorRegistry) are what it counts into."""
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else load_or_create_secret(
        settings.data_dir)
    store = AuthStore(database, tiers=settings.rate_limit_tiers.keys(),
                      max_active_keys=settings.max_active_keys_per_user)
    tokens = TokenIssuer(secret, settings.jwt_ttl_s)
    return SecurityService(
        settings=settings,
        store=store,
        tokens=tokens,
        authenticator=Authenticator(store, tokens, settings.user_models, auth_metrics,
                                    cache_size=settings.auth_cache_size, cache_ttl_s=settings.auth_cache_ttl_s),
        policy=Policy(anonymous_models=settings.anonymous_models, lookup=lookup, names=names,
                      tiers=settings.rate_limit_tiers, model_tiers=settings.rate_limit_models,
                      key_tier=settings.rate_limit_key_tier),
        limits=RateLimits(settings.rate_limit_storage, key_prefix=settings.rate_limit_key_prefix,
                          on_storage_error=settings.rate_limit_on_storage_error,
                          log_interval_s=settings.rate_limit_error_log_interval_s,
                          metrics=limit_metrics),
        addresses=ClientAddressResolver(settings.trusted_proxies),
    )


async def ensure_first_admin(settings: Settings, store: AuthStore) -> None:
    """Create ``admin_username`` with ``admin_password`` (role admin) if that user does not exist yet.

    Never changes an existing user. Without both settings nothing is created: make the first admin with
    ``mlgate users create NAME --role admin`` (it prompts for the password).
    """
    if settings.admin_username and settings.admin_password:
        if await store.get_user(settings.admin_username) is None:
            try:
                await store.create_user(settings.admin_username, settings.admin_password.get_secret_value(),
                                        Role.ADMIN, actor=Actor("system", client="local"))
            except Conflict:
                return  # another HTTP process of this server (or a replica) created it at the same moment
            log.info("first admin created from settings", username=settings.admin_username)
    elif await store.count_users(Role.ADMIN) == 0:
        log.warning("no admin user yet; create one with: mlgate users create <name> --role admin")


def registry_policies(registry: ModelRegistry) -> Callable[[str], ModelPolicy | None]:
    """``lookup`` for ``build_security``: a served model's policy, from its newest version's manifest.

    Asked several times per request, so each manifest's policy is built once (manifests never change; a new
    version or a reload brings a new manifest object).
    """
    built: dict[int, tuple[ModelManifest, ModelPolicy]] = {}

    def lookup(name: str) -> ModelPolicy | None:
        try:
            manifest = registry.get(name).manifest
        except MlgateError:
            return None
        if manifest is None:
            return None
        entry = built.get(id(manifest))
        if entry is None or entry[0] is not manifest:
            if len(built) > 4096:
                built.clear()
            entry = built[id(manifest)] = (
                manifest, ModelPolicy(anonymous=manifest.access.anonymous, rate_limits=manifest.rate_limit))
        return entry[1]

    return lookup
