"""Where a job's result is kept: in its database row when small, in the artifact store when large.

A result body of at most ``jobs_result_inline_bytes`` of JSON is the row's ``result``; a larger one is written
to the artifact store the registry keeps model archives in (``mlgate.catalog.store``, setting
``artifact_store``: a local folder by default, or S3, GCS...) as ``_jobs/<job id>-<attempt>.json``, and the
row keeps its URI (``result_uri``). ``GET /api/v1/jobs/{id}/result`` streams it back from there; the runner
deletes it when the job expires (or when the attempt that wrote it lost the job to a cancel or a takeover).
Workers on other machines must share the artifact store (an object store URL) for their large results to be
readable by the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, BinaryIO

import anyio.to_thread
import structlog

from mlgate.catalog.store import CHUNK, ArtifactStore
from mlgate.codecs.json import dumps
from mlgate.settings import Settings

__all__ = ["ResultStore"]

log = structlog.get_logger("mlgate.jobs.results")


class ResultStore:
    """Keeps job results: inline up to ``settings.jobs_result_inline_bytes``, else in the artifact store."""

    def __init__(self, settings: Settings) -> None:
        self.inline_bytes = settings.jobs_result_inline_bytes
        self.artifacts = ArtifactStore(settings.effective_artifact_store, settings.data_dir / "cache",
                                       max_unpacked_bytes=settings.registry_max_unpacked_bytes)

    async def keep(self, job_id: str, attempt: int, result: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """``(result, None)`` when it is small enough for the row, else ``(None, uri)`` once it was written to
        the artifact store (``OSError`` when that fails)."""
        data = dumps(result)
        if len(data) <= self.inline_bytes:
            return result, None
        uri = await anyio.to_thread.run_sync(self.artifacts.put_blob, f"_jobs/{job_id}-{attempt}.json", data)
        log.info("job result kept in the artifact store", job=job_id, bytes=len(data))
        return None, uri

    async def open(self, uri: str) -> BinaryIO:
        """The stored result, open for reading; FileNotFoundError when it is gone."""
        return await anyio.to_thread.run_sync(ArtifactStore.open_blob, uri)

    @staticmethod
    async def chunks(fh: BinaryIO) -> AsyncIterator[bytes]:
        """The content of ``fh`` (from ``open``) in chunks of 1 MiB, read off the event loop; closes it."""
        try:
            while chunk := await anyio.to_thread.run_sync(fh.read, CHUNK):
                yield chunk
        finally:
            fh.close()

    async def delete(self, uris: list[str]) -> None:
        """Remove stored results (missing ones are fine; a failure is logged, never raised)."""
        for uri in uris:
            try:
                await anyio.to_thread.run_sync(self.artifacts.delete, uri)
            except OSError as exc:
                log.warning("job result not deleted from the artifact store", uri=uri, error=str(exc))
