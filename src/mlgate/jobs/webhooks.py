"""Job webhooks: when a job ends, ``POST`` the job (as ``GET /api/v1/jobs/{id}`` shows it) to the URL given at
submission, signed so the receiver can trust it, and only to hosts an operator allowed.

Allowed hosts: the setting ``jobs_webhook_hosts`` (``host`` or ``host:port``, exact); any other URL is refused
at submission (400), so a caller cannot make the server send requests to arbitrary addresses. Empty: no
webhooks.

Signature (like Stripe's and GitHub's): headers ``X-Mlgate-Timestamp: <unix seconds>`` and
``X-Mlgate-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body>``, keyed with the submitting key's
webhook secret: ``HMAC-SHA256(server webhook secret, actor)`` (``webhook_secret``), which the key's owner reads
from ``GET /api/v1/jobs/webhook-secret``. The server secret is ``jobs_webhook_secret`` or, when unset, a random
one kept in ``data_dir/webhook-secret`` (workers on other machines need the setting). Delivery is tried
``ATTEMPTS`` times with growing pauses; a failure is logged, never retried after that.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from mlgate.auth.tokens import load_or_create_secret
from mlgate.codecs.json import dumps
from mlgate.errors import InvalidInput
from mlgate.settings import Settings

__all__ = ["ATTEMPTS", "WebhookSender", "check_webhook", "server_secret", "sign", "webhook_secret"]

log = structlog.get_logger("mlgate.jobs.webhooks")

ATTEMPTS = 3
TIMEOUT_S = 10.0


def check_webhook(url: str, allowed: Sequence[str]) -> str:
    """``url`` if it is an http(s) URL to an allowed host; else InvalidInput (400, field ``webhook``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"webhook {url[:200]!r}: expected an http:// or https:// URL", field="webhook")
    if not allowed:
        raise InvalidInput("webhook: webhooks are off on this server (setting jobs_webhook_hosts is empty)",
                           field="webhook")
    host = parts.hostname.lower()
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput(f"webhook {url[:200]!r}: the port is not a number", field="webhook") from None
    candidates = {host} | ({f"{host}:{port}"} if port is not None else set())
    if not candidates & {h.lower() for h in allowed}:
        raise InvalidInput(f"webhook: host {host!r} is not allowed (setting jobs_webhook_hosts)", field="webhook")
    return url


def server_secret(settings: Settings) -> str:
    """The server's webhook key: ``jobs_webhook_secret``, else the one kept in ``data_dir/webhook-secret``."""
    if settings.jobs_webhook_secret is not None:
        return settings.jobs_webhook_secret.get_secret_value()
    return load_or_create_secret(settings.data_dir, "webhook-secret", "MLGATE_JOBS_WEBHOOK_SECRET")


def webhook_secret(key: str, actor: str) -> str:
    """The webhook signing secret of one submitter (``actor``, e.g. ``key:mlg_ab12 (user:ann)``), hex;
    ``key`` is the server's (``server_secret``)."""
    return hmac.new(key.encode(), f"webhook:{actor}".encode(), hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``"<timestamp>." + body`` keyed with ``secret``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


class WebhookSender:
    """Delivers job webhooks in the background; ``close`` waits briefly for the ones in flight."""

    def __init__(self, settings: Settings) -> None:
        self.secret = server_secret(settings)
        self.allowed = tuple(settings.jobs_webhook_hosts)
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, url: str, actor: str, payload: dict[str, Any]) -> None:
        """Deliver ``payload`` to ``url`` signed for ``actor``, in the background."""
        task = asyncio.create_task(self._deliver(url, actor, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, actor: str, payload: dict[str, Any]) -> None:
        try:
            check_webhook(url, self.allowed)  # the setting may have changed since submission
        except InvalidInput:
            log.warning("webhook host no longer allowed; not sent", url=url[:200])
            return
        body = dumps(payload)
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": "mlgate-webhook",
                   "X-Mlgate-Timestamp": str(timestamp),
                   "X-Mlgate-Signature": sign(webhook_secret(self.secret, actor), timestamp, body)}
        async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as client:
            for attempt in range(ATTEMPTS):
                try:
                    response = await client.post(url, content=body, headers=headers)
                    if response.status_code < 300:
                        return
                    log.warning("webhook refused", url=url[:200], status=response.status_code, attempt=attempt + 1)
                except httpx.HTTPError as exc:
                    log.warning("webhook failed", url=url[:200], error=str(exc), attempt=attempt + 1)
                await asyncio.sleep(2 ** attempt)
        log.error("webhook given up", url=url[:200], job=payload.get("id"))

    async def close(self, timeout_s: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
