"""Submitting a job from an HTTP request: ``POST /api/v1/jobs`` and ``Prefer: respond-async`` (RFC 7240)
on the inference routes (V2 infer, V1 predict, OpenAI embeddings) both end in ``accept_job``.

A job belongs to a signed-in user (every key of the user shares its jobs): an anonymous caller, even on a
model open to anonymous callers, gets 401. The request is admitted first (``admit``, by the caller), then
checked against the model here (404, 503, 400: never a job that is bound to fail on its body), and charged
its rows (or texts) like the synchronous call; the answer is ``202 Accepted`` with ``Location`` naming the job.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from mlgate.auth.caller import Caller
from mlgate.errors import Unauthenticated
from mlgate.jobs.execute import validate
from mlgate.jobs.service import Submission
from mlgate.jobs.webhooks import check_webhook
from mlgate.protocols.body import json_response
from mlgate.protocols.headers import header_values
from mlgate.protocols.security import charge
from mlgate.protocols.state import request_state, server_state

__all__ = ["JOBS_PATH", "accept_job", "job_owner", "prefers_async"]

JOBS_PATH = "/api/v1/jobs"
"""Where jobs live (``Location`` of a 202)."""


def prefers_async(request: Request) -> bool:
    """Whether the request carries ``Prefer: respond-async`` (RFC 7240 section 4.1; tokens are
    case-insensitive, several preferences may share a header or come in several)."""
    for value in header_values(request, b"prefer"):
        for preference in value.split(","):
            if preference.split(";", 1)[0].split("=", 1)[0].strip().lower() == "respond-async":
                return True
    return False


def job_owner(caller: Caller) -> str:
    """Who owns the jobs ``caller`` submits: its user (``user:<id>``). 401 for an anonymous caller."""
    if caller.anonymous or caller.user_id is None:
        raise Unauthenticated("jobs belong to a user: send an API key or an access token "
                              "(Authorization: Bearer ...)")
    return f"user:{caller.user_id}"


async def accept_job(request: Request, protocol: str, model: str, version: str | None, body: Any, *,
                     timeout_ms: float | None = None, webhook: str | None = None) -> Response:
    """Check, charge and queue the admitted ``request``'s inference as a job; the 202 response.

    ``body`` is the parsed JSON body in ``protocol`` (``v2``, ``v1``, ``openai``). Raises 401 (anonymous),
    what ``mlgate.jobs.validate`` raises (400, 404, 503), 400 for a ``webhook`` to a host not allowed, 429
    (rate limit, or too many queued jobs).
    """
    state = request_state(request)
    if state.caller is None or not state.admitted:
        raise RuntimeError("accept_job() before admit(): admit the request first")
    owner = job_owner(state.caller)
    server = server_state(request)
    if webhook is not None:
        check_webhook(webhook, server.settings.jobs_webhook_hosts)  # before anything is charged
    await charge(request, validate(server.dataplane, protocol, model, version, body))
    job = await server.jobs.submit(Submission(
        owner=owner, actor=state.caller.actor, model=model, version=version, protocol=protocol, body=body,
        timeout_ms=timeout_ms, request_id=state.request_id or None, webhook=webhook))
    view = await server.jobs.view(job)
    return json_response(view, 202, headers={"Location": f"{JOBS_PATH}/{job.id}",
                                             "Preference-Applied": "respond-async"})
