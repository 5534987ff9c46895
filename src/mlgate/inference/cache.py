"""The response cache of deterministic models (manifest ``[cache]``): identical requests answered once.

Key: the model, its version, each input tensor (name, dtype, shape, bytes) and the request's parameters,
hashed (BLAKE2b). The cached value is every output of the model, so requests asking for other outputs, or
for the classification extension, share an entry; a new version has other keys, so it never serves an old
version's answer. Requests with parameters that are not JSON are not cached (a job's progress callback is
left out of the key).

Storage (setting ``cache_storage``): ``memory`` (one TTL cache per model version, ``max_entries`` answers,
``ttl_s`` seconds each) or ``redis://...`` (shared by every replica; entries expire after ``ttl_s``; the size is
Redis's ``maxmemory`` policy's business; outputs of strings are not stored there). Identical requests in
flight at the same time in one process are computed once (single-flight): the first computes, the others
await its answer. A request with ``Cache-Control: no-cache`` (or ``no-store``) is computed and not stored.
Hits and misses are counted in ``mlgate_cache_requests_total{model, version, result}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np
import orjson
import structlog
from cachetools import TTLCache

from mlgate.metrics import EngineMetrics
from mlgate.runtimes.base import split_progress

__all__ = ["ResponseCache"]

log = structlog.get_logger("mlgate.inference.cache")

Outputs = dict[str, np.ndarray]


def _tensor_bytes(array: np.ndarray) -> bytes:
    if array.dtype.kind == "O":  # BYTES: each element's length, then its bytes
        parts = []
        for item in array.reshape(-1):
            data = item if isinstance(item, bytes) else str(item).encode()
            parts.append(len(data).to_bytes(8, "little") + data)
        return b"".join(parts)
    return np.ascontiguousarray(array).tobytes()


class ResponseCache:
    """Answers of cached models, in memory or on Redis (see the module docstring)."""

    def __init__(self, storage: str = "memory", metrics: EngineMetrics | None = None, *,
                 prefix: str = "mlgate:cache:") -> None:
        self.storage = storage
        self.metrics = metrics
        self.prefix = prefix
        self._memory: dict[tuple[str, str], TTLCache[str, Outputs]] = {}
        self._inflight: dict[str, asyncio.Future[Outputs]] = {}
        self._redis: Any = None
        if storage != "memory":
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(storage)

    @staticmethod
    def key(name: str, version: str, inputs: Mapping[str, np.ndarray],
            parameters: Mapping[str, Any] | None) -> str | None:
        """The cache key of a request, hex; None when its parameters are not JSON (never cached)."""
        try:
            plain = split_progress(parameters)[0] if parameters else {}  # a job's progress callback is no input
            params = orjson.dumps(dict(plain), option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        digest = hashlib.blake2b(digest_size=20)
        for part in (name.encode(), b"\0", version.encode(), b"\0", params):
            digest.update(part)
        for input_name in sorted(inputs):
            array = np.asarray(inputs[input_name])
            digest.update(f"\0{input_name}\0{array.dtype.str}\0{array.shape}\0".encode())
            digest.update(_tensor_bytes(array))
        return digest.hexdigest()

    def _count(self, name: str, version: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.cache.labels(name, version, result).inc()

    async def get_or_compute(self, name: str, version: str, key: str, *, ttl_s: float, max_entries: int,
                             compute: Callable[[], Awaitable[Outputs]]) -> Outputs:
        """The cached answer for ``key``, or ``compute()``'s, stored; one computation per key in flight."""
        cached = await self._get(name, version, key, ttl_s, max_entries)
        if cached is not None:
            self._count(name, version, "hit")
            return cached
        pending = self._inflight.get(key)
        if pending is not None:  # an identical request is computing: share its answer
            self._count(name, version, "hit")
            return await asyncio.shield(pending)
        self._count(name, version, "miss")
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            outputs = await compute()
        except Exception as exc:
            future.set_exception(exc)  # the requests sharing it get the same error
            future.exception()  # marked retrieved: no warning when nobody shared it
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(outputs)
        await self._put(name, version, key, outputs, ttl_s, max_entries)
        return outputs

    async def _get(self, name: str, version: str, key: str, ttl_s: float, max_entries: int) -> Outputs | None:
        if self._redis is None:
            return self._table(name, version, ttl_s, max_entries).get(key)
        try:
            raw = await self._redis.get(self.prefix + key)
        except Exception as exc:  # noqa: BLE001 - a cache that is down is a miss, never an error
            log.warning("response cache unreachable", error=str(exc))
            return None
        if raw is None:
            return None
        with np.load(io.BytesIO(raw), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    async def _put(self, name: str, version: str, key: str, outputs: Outputs, ttl_s: float,
                   max_entries: int) -> None:
        if self._redis is None:
            self._table(name, version, ttl_s, max_entries)[key] = outputs
            return
        if any(np.asarray(a).dtype.kind == "O" for a in outputs.values()):
            return  # strings would need pickle; not stored on Redis
        buffer = io.BytesIO()
        arrays = {k: np.asarray(v) for k, v in outputs.items()}
        np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
        try:
            await self._redis.set(self.prefix + key, buffer.getvalue(), px=max(1, int(ttl_s * 1000)))
        except Exception as exc:  # noqa: BLE001 - a cache that is down is a miss, never an error
            log.warning("response cache unreachable", error=str(exc))

    def _table(self, name: str, version: str, ttl_s: float, max_entries: int) -> TTLCache[str, Outputs]:
        table = self._memory.get((name, version))
        if table is None or table.maxsize != max_entries or table.ttl != ttl_s:
            table = self._memory[(name, version)] = TTLCache(maxsize=max_entries, ttl=ttl_s)
        return table

    def forget(self, name: str, version: str) -> None:
        """Drop an unloaded model version's answers (memory)."""
        self._memory.pop((name, version), None)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
