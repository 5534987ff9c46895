"""Sign-in and API keys over HTTP: the OAuth2 password flow, who am I, and a caller's own keys.

- ``POST /api/v1/auth/token``: form fields ``username`` and ``password`` (OAuth2 password grant) ->
  ``{"access_token", "token_type": "bearer", "expires_in"}``; attempts are rate-limited per client address.
- ``GET /api/v1/auth/me``: the caller's identity and rights.
- ``GET /api/v1/keys``, ``POST /api/v1/keys``, ``DELETE /api/v1/keys/{prefix}``: the caller's API keys
  (admins: anyone's, with ``user``). Managing keys needs an access token (a password sign-in) or the admin
  right, so a leaked key cannot mint more keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from mlgate.access import DEFAULT_TIER
from mlgate.auth.caller import Action, Caller, CallerKind
from mlgate.auth.store import KeyInfo
from mlgate.errors import Forbidden, InvalidCredentials
from mlgate.protocols.body import json_response
from mlgate.protocols.errors import ERROR_RESPONSES
from mlgate.protocols.security import audit_actor, client_address, require_caller, security

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["Authentication"], responses=ERROR_RESPONSES)
SignedIn = Annotated[Caller, require_caller(signed_in=True)]


class TokenResponse(BaseModel):
    """An access token (OAuth2 bearer) and its lifetime in seconds."""
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


class NewKeyRequest(BaseModel):
    """The body of ``POST /api/v1/keys``: a name, and optionally the models, actions, tier and expiry."""
    name: str = Field(min_length=1, max_length=100, description="What the key is for, e.g. 'laptop'.")
    models: list[str] = Field(default_factory=lambda: ["*"], description="Model names or patterns ('*').")
    actions: list[Action] | None = Field(default=None, description="Default: every action of your role.")
    expires_at: datetime | None = Field(default=None, description="Optional expiry (ISO 8601 with zone).")
    tier: str = Field(default=DEFAULT_TIER, description="Rate-limit tier (admins only may pick another).")
    user: str | None = Field(default=None, description="Admins: make the key for this user.")


def _key_json(key: KeyInfo) -> dict[str, object]:
    return {"prefix": key.prefix, "name": key.name, "user": key.username, "models": list(key.models),
            "actions": [a.value for a in key.actions], "tier": key.tier,
            "created_at": key.created_at.isoformat(),
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None}


@router.post("/auth/token", response_model=TokenResponse, summary="Sign in (OAuth2 password flow)")
async def token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Response:
    """Sign in with a username and password (form fields); 401 for wrong ones, 429 past the login limit."""
    service = security(request)
    if service.settings.rate_limit_enabled:
        await service.limits.consume_login(service.settings.login_rate_limit, client_address(request))
    user = await service.store.check_password(form.username, form.password)
    if user is None:
        raise InvalidCredentials("wrong username or password", field=None)
    response = json_response({"access_token": service.tokens.issue(user.id, user.username),
                              "token_type": "bearer", "expires_in": service.tokens.ttl_s})
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@router.get("/auth/me", summary="Who am I")
async def me(caller: SignedIn) -> Response:
    """The signed-in caller: user or key, role, and the rights it has."""
    return json_response({"user": caller.username, "role": caller.role, "via": caller.kind.value,
                          "key": caller.key_prefix, "actions": sorted(caller.actions),
                          "models": [list(scope) for scope in caller.model_scopes], "tier": caller.tier})


def _key_manager(caller: Caller, user: str | None) -> str | None:
    """The user whose keys the caller manages (None: everyone's, admins only)."""
    admin = caller.may(Action.ADMIN)
    if not admin and caller.kind is not CallerKind.TOKEN:
        raise Forbidden("managing keys needs an access token (POST /api/v1/auth/token) or the admin right")
    if user is not None and user != caller.username and not admin:
        raise Forbidden("only admins manage the keys of other users", field="user")
    return user if admin else caller.username


@router.get("/keys", summary="List API keys")
async def list_keys(request: Request, caller: SignedIn, user: str | None = None) -> Response:
    """The caller's API keys (an admin may name another ``user``), without secrets."""
    owner = _key_manager(caller, user)
    keys = await security(request).store.list_keys(owner)
    return json_response({"keys": [_key_json(k) for k in keys]})


@router.post("/keys", status_code=201, summary="Create an API key (the key is shown once)")
async def create_key(request: Request, caller: SignedIn, body: NewKeyRequest) -> Response:
    """Create an API key for the caller (an admin may name another user); the key is in this answer only."""
    owner = _key_manager(caller, body.user) or caller.username
    assert owner is not None
    if body.tier != DEFAULT_TIER and not caller.may(Action.ADMIN):
        raise Forbidden("only admins choose a key's rate-limit tier", field="tier")
    key, info = await security(request).store.create_key(
        owner, body.name, models=body.models, actions=body.actions, expires_at=body.expires_at, tier=body.tier,
        actor=audit_actor(request))
    response = json_response({"key": key, **_key_json(info)}, status_code=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.delete("/keys/{prefix}", summary="Revoke an API key")
async def revoke_key(request: Request, caller: SignedIn, prefix: str) -> Response:
    """Revoke the key with ``prefix`` (``mlg_`` and 12 hex digits); 404 for a key the caller may not see."""
    owner = _key_manager(caller, None)
    info = await security(request).store.revoke_key(prefix, actor=audit_actor(request), owner=owner)
    return json_response(_key_json(info))
