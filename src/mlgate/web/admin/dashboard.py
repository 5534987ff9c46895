"""The usage dashboard at ``/admin/dashboard``: requests per second, p50 and p99 latency, errors and 429s over
a chosen range, per model and per caller (API key), from the prediction log. Admins only.

The numbers come from ``mlgate.predlog.usage.usage_report`` (the same report as ``GET /api/v1/usage``); the page
includes the ``dashboard_panel.html`` partial (tables rendered on the server, charts drawn by
``static/dashboard.js`` with the vendored uPlot, served from ``/ui/static``: no CDN). Query parameters:
``start``, ``end`` (ISO 8601, UTC when naive), ``step_s``, ``model``, ``key``; a bad value shows its error
above the default report (the last hour), with status 400.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from sqladmin import expose

from mlgate.errors import InvalidInput, MlgateError
from mlgate.predlog.usage import usage_report_from_query
from mlgate.web.admin.access import ADMIN_ONLY, require
from mlgate.web.admin.pages import Page

__all__ = ["DashboardPage"]

STATIC_URL = "/ui/static"


def _step(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInput("step: give a whole number of seconds", field="step_s") from None


class DashboardPage(Page):
    """The usage dashboard: requests, latency and errors from the prediction log, by model and caller."""
    name = "Usage dashboard"
    icon = "fa-solid fa-chart-line"
    roles = ADMIN_ONLY

    @expose("/dashboard", methods=["GET"], identity="dashboard")
    async def page(self, request: Request) -> Response:
        """The dashboard for the query's ``start``, ``end``, ``step_s``, ``model`` and ``key``; admins only."""
        require(request, self.roles)
        query = request.query_params
        database = self.context.database
        try:
            report = await usage_report_from_query(
                database, start=query.get("start"), end=query.get("end"), step_s=_step(query.get("step_s")),
                model=query.get("model"), key=query.get("key"))
        except InvalidInput as exc:
            report = await usage_report_from_query(database)
            return await self.render(request, "mlgate/dashboard.html", int(exc.status), report=report,
                                     static=STATIC_URL, error=exc.message)
        except MlgateError as exc:  # the database cannot be read: say so on the page
            return await self.render(request, "mlgate/dashboard.html", int(exc.status), report=None,
                                     static=STATIC_URL, error=exc.message)
        return await self.render(request, "mlgate/dashboard.html", report=report, static=STATIC_URL)
