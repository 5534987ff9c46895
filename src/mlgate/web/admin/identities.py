"""Users, groups and API keys: the admin's page that changes them, always through ``AuthStore``.

``/admin/identities`` lists users and keys and holds the forms: create a user (the password is hashed by the
store), create a group, add a user to a group, create a key (for a user, with models, actions within the
user's role, a rate-limit tier and an optional expiry) (its secret is shown on the answer page once and never again; the
store keeps only its hash), revoke a key. Every change is audited by the store with the signed-in admin as
actor. Admins only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request
from fastapi.responses import Response
from sqladmin import expose

from mlgate.access import DEFAULT_TIER
from mlgate.auth import Action, Role
from mlgate.errors import BadRequest, MlgateError
from mlgate.web.admin.access import ADMIN_ONLY, require
from mlgate.web.admin.context import actor_of
from mlgate.web.admin.pages import Page, form_text

__all__ = ["IdentitiesPage"]

TEMPLATE = "mlgate/identities.html"


def _patterns(text: str) -> list[str]:
    return [p for p in (part.strip() for part in text.replace(",", " ").split()) if p]


class IdentitiesPage(Page):
    """Users, groups and API keys: create, add to groups, create and revoke keys (admins only)."""
    name = "Users and keys"
    icon = "fa-solid fa-user-shield"
    roles = ADMIN_ONLY

    async def _page(self, request: Request, status_code: int = 200, **values: object) -> Response:
        store = self.context.store
        return await self.render(request, TEMPLATE, status_code, users=await store.list_users(),
                                 keys=await store.list_keys(), roles=[r.value for r in Role],
                                 actions=[a.value for a in Action],
                                 tiers=sorted(store.tiers), now=datetime.now(UTC), **values)

    async def _refused(self, request: Request, exc: MlgateError) -> Response:
        return await self._page(request, int(exc.status), error=exc.message)

    @expose("/identities", methods=["GET"], identity="identities")
    async def page(self, request: Request) -> Response:
        """The page: every user and key, and the forms."""
        require(request, self.roles)
        return await self._page(request)

    @expose("/identities/users", methods=["POST"], identity="identities-create-user")
    async def create_user(self, request: Request) -> Response:
        """Create a user from the form; the page again with the error when refused."""
        require(request, self.roles)
        form = await request.form()
        try:
            user = await self.context.store.create_user(
                form_text(form, "username"), form_text(form, "password"), form_text(form, "role") or Role.USER,
                _patterns(form_text(form, "groups")), actor=actor_of(request))
        except MlgateError as exc:
            return await self._refused(request, exc)
        return self.back(request, "identities", f"User {user.username} created (role {user.role}).")

    @expose("/identities/groups", methods=["POST"], identity="identities-create-group")
    async def create_group(self, request: Request) -> Response:
        """Create a group and the models it grants."""
        require(request, self.roles)
        form = await request.form()
        name = form_text(form, "name")
        try:
            await self.context.store.create_group(name, _patterns(form_text(form, "models")),
                                                  actor=actor_of(request))
        except MlgateError as exc:
            return await self._refused(request, exc)
        return self.back(request, "identities", f"Group {name} created.")

    @expose("/identities/members", methods=["POST"], identity="identities-add-member")
    async def add_member(self, request: Request) -> Response:
        """Add a user to a group."""
        require(request, self.roles)
        form = await request.form()
        username, group = form_text(form, "username"), form_text(form, "group")
        try:
            await self.context.store.add_to_group(username, group, actor=actor_of(request))
        except MlgateError as exc:
            return await self._refused(request, exc)
        return self.back(request, "identities", f"{username} is a member of {group}.")

    @expose("/identities/keys", methods=["POST"], identity="identities-create-key")
    async def create_key(self, request: Request) -> Response:
        """Create a key for a user (actions within the user's role, optional expiry); the key is shown once."""
        require(request, self.roles)
        form = await request.form()
        try:
            expires_at = None
            if form_text(form, "expires_at"):
                try:
                    expires_at = datetime.fromisoformat(form_text(form, "expires_at"))
                except ValueError:
                    raise BadRequest("expiry: give a date and time like 2027-01-31T12:00", field="expires_at") \
                        from None
                if expires_at.tzinfo is None:
                    expires_at = expires_at.replace(tzinfo=UTC)
            key, info = await self.context.store.create_key(
                form_text(form, "username"), form_text(form, "name"),
                models=_patterns(form_text(form, "models")) or ["*"], expires_at=expires_at,
                actions=[a for a in form.getlist("actions") if isinstance(a, str)] or None,
                tier=form_text(form, "tier") or DEFAULT_TIER, actor=actor_of(request))
        except MlgateError as exc:
            return await self._refused(request, exc)
        return await self._page(request, created_key=key, created=info)

    @expose("/identities/keys/revoke", methods=["POST"], identity="identities-revoke-key")
    async def revoke_key(self, request: Request) -> Response:
        """Revoke a key by its prefix."""
        require(request, self.roles)
        form = await request.form()
        try:
            info = await self.context.store.revoke_key(form_text(form, "prefix"), actor=actor_of(request))
        except MlgateError as exc:
            return await self._refused(request, exc)
        return self.back(request, "identities", f"Key {info.prefix} ({info.name}) revoked.")
