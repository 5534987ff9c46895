"""How a job is shown: ``GET /api/v1/jobs/{id}``, lists, events, webhooks and ``mlgate jobs show`` alike."""

from __future__ import annotations

from typing import Any

from mlgate.db.tables.jobs import JobRecord

__all__ = ["job_view"]


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def job_view(job: JobRecord, *, position: int | None = None, prefix: str = "/api/v1") -> dict[str, Any]:
    """A job as the API shows it (never its request or result: those have their own routes)."""
    url = f"{prefix}/jobs/{job.id}"
    return {
        "id": job.id, "status": job.status, "model": job.model, "version": job.version,
        "protocol": job.protocol, "owner": job.owner, "progress": job.progress,
        "position": position if job.status == "queued" else None,
        "attempts": job.attempts, "error": job.error, "timeout_ms": job.timeout_ms, "webhook": job.webhook,
        "created_at": _time(job.created_at), "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at), "expires_at": _time(job.expires_at),
        "links": {"self": url, "result": f"{url}/result", "events": f"{url}/events"},
    }
