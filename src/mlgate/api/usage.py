"""The usage report over REST (under ``/api/<version>``): ``GET /usage``, for scripts and the admin dashboard.

Admins only (``Action.ADMIN``, server-wide). The report comes from the prediction log (``mlgate.predlog.usage``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from mlgate.auth.caller import Action
from mlgate.predlog.usage import DEFAULT_STEP_S, MAX_BUCKETS, UsageReport, usage_report_from_query
from mlgate.protocols.body import json_response
from mlgate.protocols.errors import ERROR_RESPONSES
from mlgate.protocols.security import require
from mlgate.protocols.state import server_state

__all__ = ["router"]

router = APIRouter(tags=["Usage"], responses=ERROR_RESPONSES)


@router.get("/usage", response_model=UsageReport, summary="Usage report (admins)",
            dependencies=[require(Action.ADMIN, None)])
async def usage(
    request: Request,
    start: Annotated[str | None, Query(description="ISO 8601 time, inclusive (UTC if no offset); default: an "
                                       "hour before end.", max_length=64)] = None,
    end: Annotated[str | None, Query(description="ISO 8601 time, exclusive; default: now.", max_length=64)] = None,
    step_s: Annotated[int | None, Query(description=f"Bucket width in seconds (default {DEFAULT_STEP_S}); at "
                                        f"most {MAX_BUCKETS} buckets.")] = None,
    model: Annotated[str | None, Query(description="Only this model.", max_length=128)] = None,
    key: Annotated[str | None, Query(description="Only this caller: as the log names it "
                                     "(`key:mlg_... (user:name)`, `user:name`), `anonymous`, or an API key's "
                                     "prefix `mlg_<12 hex>`.", max_length=256)] = None,
) -> Response:
    """Requests per second, p50/p99 latency (ms), 4xx, 5xx and 429 counts per time bucket, per model and per
    caller, from the prediction log. 400 (with ``field``) for a bad range or step; 401/403 for non-admins."""
    database = server_state(request).database
    report = await usage_report_from_query(database, start=start, end=end, step_s=step_s, model=model, key=key)
    return json_response(report.model_dump(mode="json"))
