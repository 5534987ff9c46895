"""Models and their versions: the admin's page for pushes, aliases (promote, roll back), canary and shadow.

Every change goes through ``ControlPlane``, exactly as the registry REST API's: a version is loaded and
warmed before an alias, canary or shadow moves to it, the old one drains, the change is recorded in the
catalog (``registry_changes``, with ``by = user:<name>``) with its audit-log row in the same transaction,
and followed by the other replicas. The page lists what this server serves, each version's source (the
repository folder or the registry), its state and, when it failed to load, why. Admins and deployers. A push
through this page takes archives up to ``registry_max_upload_bytes``, as the REST API does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response
from sqladmin import expose
from starlette.datastructures import FormData, UploadFile

from mlgate.db.queries.catalog import version_key
from mlgate.db.tables.audit import Actor
from mlgate.errors import InvalidInput, MlgateError
from mlgate.web.admin.access import DEPLOYERS, require
from mlgate.web.admin.context import actor_of
from mlgate.web.admin.pages import Page, form_text

__all__ = ["ModelsPage"]

TEMPLATE = "mlgate/models.html"

Change = Callable[[FormData, Actor], Awaitable[str]]
"""A change made from a submitted form by an actor (``user:<name>``, its address and request id); returns the
notice to show."""


def _percent(text: str) -> float:
    try:
        return float(text) if text else 0.0
    except ValueError:
        raise InvalidInput("canary percent: give a number between 0 and 100", field="canary_percent") from None


class ModelsPage(Page):
    """The models page: what this server serves, the catalog's models and versions, push, aliases, traffic."""
    name = "Models"
    icon = "fa-solid fa-cubes"
    roles = DEPLOYERS

    async def _page(self, request: Request, status_code: int = 200, **values: object) -> Response:
        control = self.context.control
        snapshot = await control.catalog.snapshot()
        folder = {name: [source.version for source in sources] for name, sources in control.folder_sources.items()}
        served = sorted(control.plane.registry, key=lambda h: (h.name, version_key(h.version)))
        return await self.render(request, TEMPLATE, status_code, models=list(snapshot.models.values()),
                                 folder=dict(sorted(folder.items())), served=served, **values)

    @expose("/models", methods=["GET"], identity="models")
    async def page(self, request: Request) -> Response:
        """The page (deployers and admins)."""
        require(request, self.roles)
        return await self._page(request)

    async def _apply(self, request: Request, change: Change) -> Response:
        """Run ``change`` (form, actor -> notice) and redirect back, or show the page with its error."""
        require(request, self.roles)
        form = await request.form()
        try:
            notice = await change(form, actor_of(request))
        except MlgateError as exc:
            return await self._page(request, int(exc.status), error=exc.message)
        finally:
            await form.close()
        return self.back(request, "models", notice)

    @expose("/models/push", methods=["POST"], identity="models-push")
    async def push(self, request: Request) -> Response:
        """Push an uploaded archive as a new version."""
        async def change(form: FormData, by: Actor) -> str:
            upload = form.get("archive")
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise InvalidInput("choose a model archive (.tar.gz or .zip) to push", field="archive")
            info = await self.context.control.push(form_text(form, "model"), upload.file,
                                                   version=form_text(form, "version") or None, by=by)
            return f"Pushed {info.name} version {info.version}."

        return await self._apply(request, change)

    @expose("/models/alias", methods=["POST"], identity="models-alias")
    async def set_alias(self, request: Request) -> Response:
        """Point an alias at a version (loaded and warmed first)."""
        async def change(form: FormData, by: Actor) -> str:
            name, version = form_text(form, "model"), form_text(form, "version")
            alias = form_text(form, "alias") or "production"
            previous = await self.context.control.set_alias(name, alias, version, by=by)
            return f"{name}@{alias} now points at version {version} (was {previous or 'unset'})."

        return await self._apply(request, change)

    @expose("/models/rollback", methods=["POST"], identity="models-rollback")
    async def rollback(self, request: Request) -> Response:
        """Move an alias back to its previous version."""
        async def change(form: FormData, by: Actor) -> str:
            name, alias = form_text(form, "model"), form_text(form, "alias") or "production"
            left, now = await self.context.control.rollback(name, alias, by=by)
            return f"{name}@{alias} rolled back from version {left} to {now}."

        return await self._apply(request, change)

    @expose("/models/traffic", methods=["POST"], identity="models-traffic")
    async def traffic(self, request: Request) -> Response:
        """Set or clear a model's canary split and shadow version."""
        async def change(form: FormData, by: Actor) -> str:
            name = form_text(form, "model")
            canary = form_text(form, "canary_version") or None
            shadow = form_text(form, "shadow_version") or None
            percent = _percent(form_text(form, "canary_percent"))
            await self.context.control.set_traffic(name, canary_version=canary, canary_percent=percent,
                                                   shadow_version=shadow, by=by)
            canary_text = f"{canary} at {percent:g}%" if canary else "off"
            return f"{name}: canary {canary_text}, shadow {shadow or 'off'}."

        return await self._apply(request, change)
