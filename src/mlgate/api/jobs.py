"""Inference jobs over REST (under ``/api/<version>/jobs``): submit, read, wait, cancel, list.

``POST /jobs`` takes ``{"model", "version"?, "protocol"?, "request", "timeout_ms"?}``: ``request`` is the body the
synchronous route takes (V2 by default; ``protocol`` ``v1`` or ``openai`` for those routes' bodies); it answers
202 with ``Location``. ``GET /jobs/{id}`` is the job's status, progress and place in the queue;
``/result`` the body the synchronous call would have returned (409 before it succeeded, 410 once expired);
``/events`` Server-Sent Events of its status and progress until it ends; ``DELETE`` cancels it.
``GET /jobs`` lists jobs newest first (filters ``status``, ``model``, ``since``, ``until``; cursor pages).

Security: a job is its owner's (the user behind the key or token that submitted it); anyone else gets 404 for
it, as for a job that does not exist, and does not see it in lists. Admins (the ``admin`` right server-wide)
see and cancel every job. Anonymous callers get 401.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from mlgate.auth.caller import Action, Caller
from mlgate.db.queries.jobs import JobFilter
from mlgate.db.tables.jobs import JOB_STATUSES, TERMINAL, JobRecord
from mlgate.errors import InvalidInput, JobExpired, JobNotFinished
from mlgate.jobs.service import JobService
from mlgate.model.manifest import is_valid_name
from mlgate.protocols.body import json_response, query_time
from mlgate.protocols.errors import ERROR_RESPONSES
from mlgate.protocols.jobs import accept_job, job_owner
from mlgate.protocols.security import Bearer, admit, authenticate
from mlgate.protocols.state import server_state

__all__ = ["JobSubmission", "router"]

router = APIRouter(tags=["Jobs"], responses=ERROR_RESPONSES)

class JobSubmission(BaseModel):
    """``POST /api/v1/jobs``: which model, and the request its synchronous route would take."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=128, description="The model (or alias).")
    version: str | None = Field(default=None, max_length=128, description="The version; default: as routed.")
    protocol: Literal["v2", "v1", "openai"] = Field(
        default="v2", description="The wire format of `request` and of the result: V2 infer, V1 predict, "
        "OpenAI embeddings.")
    request: dict[str, Any] = Field(description="The inference request body, as the synchronous route takes it.")
    timeout_ms: float | None = Field(
        default=None, gt=0, description="A limit for this job in ms; it can lower the model's, never raise it.")
    webhook: str | None = Field(
        default=None, max_length=2048, description="POSTed the job, signed, when it ends; its host must be "
        "in the setting jobs_webhook_hosts.")


async def _owner_scope(request: Request, _: Bearer) -> tuple[Caller, str | None]:
    """Any signed-in caller; the owner whose jobs it sees (None: an admin, every owner's)."""
    caller = await admit(request, None, signed_in=True)
    return caller, None if caller.may(Action.ADMIN) else job_owner(caller)


Scope = Annotated[tuple[Caller, str | None], Depends(_owner_scope)]
JobId = Annotated[str, Path(min_length=1, max_length=64, description="The job's id (from 202's Location).")]


def _jobs(request: Request) -> JobService:
    return server_state(request).jobs


@router.post("/jobs", status_code=202, summary="Submit an inference job (202 with Location)")
async def submit(request: Request, body: JobSubmission, _: Bearer) -> Response:
    caller = await authenticate(request)
    job_owner(caller)  # 401 for anonymous callers before anything is charged
    if not is_valid_name(body.model):
        raise InvalidInput(f"model {body.model!r} is not a valid model name", field="model")
    if body.protocol == "openai" and body.request.get("model", body.model) != body.model:
        raise InvalidInput("request.model: must name the job's model", field="request.model")
    await admit(request, Action.PREDICT, body.model, body.version)
    return await accept_job(request, body.protocol, body.model, body.version, body.request,
                            timeout_ms=body.timeout_ms, webhook=body.webhook)


@router.get("/jobs/webhook-secret", summary="The secret that signs your jobs' webhooks (per API key)")
async def webhook_secret(request: Request, scope: Scope) -> Response:
    """``{"secret"}``: verify a webhook by computing HMAC-SHA256 over ``"<X-Mlgate-Timestamp>." + body`` with
    it and comparing with ``X-Mlgate-Signature`` (``sha256=<hex>``). Each API key (or signed-in user) has its own."""
    return json_response({"secret": _jobs(request).webhook_secret(scope[0].actor),
                          "algorithm": "HMAC-SHA256 over '<X-Mlgate-Timestamp>.' + body"})


@router.get("/jobs/{job_id}", summary="A job's status, progress and place in the queue")
async def show(request: Request, job_id: JobId, scope: Scope) -> Response:
    jobs = _jobs(request)
    return json_response(await jobs.view(await jobs.get(job_id, scope[1])))


@router.get("/jobs/{job_id}/result", summary="A job's result: the body the synchronous call returns")
async def result(request: Request, job_id: JobId, scope: Scope) -> Response:
    jobs = _jobs(request)
    job = await jobs.get(job_id, scope[1])
    if job.status == "succeeded" and job.result_uri is not None:
        try:
            stored = await jobs.results.open(job.result_uri)
        except FileNotFoundError:
            raise JobExpired(f"job '{job.id}': its result is gone from the artifact store") from None
        return StreamingResponse(jobs.results.chunks(stored), media_type="application/json")
    if job.status == "succeeded" and job.result is not None:
        return json_response(job.result)
    if job.status == "failed" and job.error:
        error = job.error
        return json_response({"error": error.get("error"), "code": error.get("code"), "field": error.get("field")},
                             int(error.get("status", 500)))
    if job.status == "expired":
        raise JobExpired(f"job '{job.id}' ended at {job.finished_at.isoformat() if job.finished_at else '?'}; its "
                         "result was dropped after the retention time (jobs_result_ttl_s)")
    raise JobNotFinished(f"job '{job.id}' is {job.status}: it has no result"
                         + (" yet; wait, or follow its events" if job.status in ("queued", "running") else ""),
                         field="status")


@router.delete("/jobs/{job_id}", summary="Cancel a job (a running one is stopped)")
async def cancel(request: Request, job_id: JobId, scope: Scope) -> Response:
    jobs = _jobs(request)
    return json_response(await jobs.view(await jobs.cancel(await jobs.get(job_id, scope[1]))))


async def _visible(request: Request, job_id: JobId, scope: Scope) -> JobRecord:
    """The job, if the caller may see it (a dependency: a 404 comes before a stream starts)."""
    return await _jobs(request).get(job_id, scope[1])


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse,
            summary="Server-Sent Events of a job's status and progress, until it ends")
async def events(request: Request, job: Annotated[JobRecord, Depends(_visible)]) -> AsyncIterator[ServerSentEvent]:
    """``event: status`` (the job, as ``GET /jobs/{id}`` shows it) when its status changes, ``event: progress``
    (``{"id", "progress"}``) when only its progress does; the stream ends after the final status."""
    jobs = _jobs(request)
    seen: tuple[str, float | None] | None = None
    with jobs.watch(job.id) as watch:
        # Watching from here on; read once more unless it had ended: it may have changed since the first read.
        current = job if job.status in TERMINAL else await jobs.store.get(job.id)
        while current is not None:
            if seen is None or current.status != seen[0]:
                yield ServerSentEvent(event="status", data=await jobs.view(current))
            elif current.progress != seen[1]:
                yield ServerSentEvent(event="progress", data={"id": current.id, "progress": current.progress})
            seen = (current.status, current.progress)
            if current.status in TERMINAL:
                return
            # This process's runner or a cancel hands the new row over; else (progress, another process) read.
            current = await watch.next(jobs.events_poll_s) or await jobs.store.get(job.id)


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        return int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this API returned", field="cursor") from None


@router.get("/jobs", summary="List jobs, newest first (yours; an admin's: everyone's)")
async def list_jobs(
    request: Request, scope: Scope,
    status: Annotated[str | None, Query(description=f"One of {', '.join(JOB_STATUSES)}.")] = None,
    model: Annotated[str | None, Query(max_length=128)] = None,
    owner: Annotated[str | None, Query(max_length=200, description="Admins: one owner's jobs (user:<id>).")] = None,
    since: Annotated[str | None, Query(description="Created at or after (ISO 8601).")] = None,
    until: Annotated[str | None, Query(description="Created before (ISO 8601).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
) -> Response:
    if status is not None and status not in JOB_STATUSES:
        raise InvalidInput(f"status {status!r}: expected one of {', '.join(JOB_STATUSES)}", field="status")
    if model is not None and not is_valid_name(model):
        raise InvalidInput(f"model {model!r} is not a valid model name", field="model")
    where = JobFilter(owner=scope[1] if scope[1] is not None else owner, status=status, model=model,
                      since=query_time(since, "since"), until=query_time(until, "until"))
    items, after = await _jobs(request).page(where, limit=limit, before_seq=_cursor(cursor))
    next_cursor = base64.urlsafe_b64encode(str(after).encode()).decode().rstrip("=") if after is not None else None
    return json_response({"items": items, "next_cursor": next_cursor})

