"""One worker process as the server sees it: start it, send it a batch, read its answers, stop it.

A worker computes one batch at a time. ``serve`` reads its answers until its stdout ends (the process
exited or was killed); the request it held then fails with WorkerDied (503). An answer that is not plain
data is treated as a dead worker too: the process is killed and restarted by the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from mlgate.errors import ModelError, ModelLoadError, RemoteError, WorkerDied
from mlgate.model.manifest import ModelManifest
from mlgate.runtimes.base import Batch
from mlgate.workers.protocol import encode, read_message

__all__ = ["WorkerProcess"]

log = structlog.get_logger("mlgate.workers")

_STREAM_LIMIT = 4 * 1024 * 1024  # bytes buffered from a worker's stdout before reading pauses


class WorkerProcess:
    """One running worker process and its message stream (one request at a time)."""
    def __init__(self, proc: asyncio.subprocess.Process, ready: Mapping[str, Any], name: str) -> None:
        self._proc = proc
        self.ready = ready
        """The worker's hello: ``{"ok": True, "pid", "inputs", "outputs"}`` (tensor specs as dicts)."""
        self.name = name
        self.alive = True
        self._pending: asyncio.Future[dict[str, Any]] | None = None
        self._seq = 0

    @property
    def pid(self) -> int:
        """The operating system's process id."""
        return self._proc.pid

    @classmethod
    async def start(cls, manifest: ModelManifest, directory: Path, *, timeout_s: float) -> WorkerProcess:
        """Start a worker and wait until it loaded the model.

        Raises ModelLoadError with the worker's reason when loading fails, or when it takes over
        ``timeout_s`` seconds or the process ends first.
        """
        name = f"{manifest.name}:{manifest.version}"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mlgate.workers.main",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=_STREAM_LIMIT)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.writelines(encode({"manifest": manifest.model_dump(mode="json"), "directory": str(directory)}))
            async with asyncio.timeout(timeout_s):
                await proc.stdin.drain()
                ready = await read_message(proc.stdout)
        except TimeoutError:
            await _kill(proc)
            raise ModelLoadError(f"worker process did not load model '{name}' within {timeout_s:g} s "
                                 "(setting worker_start_timeout_s)") from None
        except (asyncio.IncompleteReadError, ConnectionError, pickle.UnpicklingError) as exc:
            await _kill(proc)
            raise ModelLoadError(f"worker process of model '{name}' exited while loading it "
                                 f"(exit status {proc.returncode}); its stderr says why") from exc
        except BaseException:
            await _kill(proc)
            raise
        if not ready.get("ok"):
            await _kill(proc)
            raise ModelLoadError(f"worker process could not load model '{name}': {ready.get('error')}")
        return cls(proc, ready, name)

    async def infer(self, batch: Batch, parameters: Mapping[str, Any]) -> Batch:
        """Send one batch and await its outputs. Raises WorkerDied, ModelError (logged) or RemoteError."""
        frame = encode(("infer", self._seq + 1, dict(batch), dict(parameters)))
        assert self._pending is None and self._proc.stdin is not None, "a worker computes one batch at a time"
        self._seq += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending = future
        try:
            self._proc.stdin.writelines(frame)
            with contextlib.suppress(ConnectionError):  # a dead worker: serve() fails the future
                await self._proc.stdin.drain()
            reply = await future
            if "error" in reply:
                raise self._error(reply["error"])  # here, so the log line carries the request's id
            outputs: Batch = reply["outputs"]
            return outputs
        finally:
            if not future.done():
                future.cancel()  # our caller gave up (its deadline); the worker stays busy until it answers

    async def serve(self, on_free: Callable[[WorkerProcess], None]) -> None:
        """Read answers until the worker's stdout ends; call ``on_free`` after each. Returns when it died."""
        assert self._proc.stdout is not None
        try:
            while True:
                reply = await read_message(self._proc.stdout)
                future, self._pending = self._pending, None
                if future is None or reply.get("seq") != self._seq:
                    log.error("worker process answered out of turn; restarting it", model=self.name, pid=self.pid)
                    break
                if not future.done():
                    future.set_result(reply)
                on_free(self)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the process ended
        except (pickle.UnpicklingError, AttributeError, KeyError, TypeError, ValueError) as exc:
            log.error("worker process sent a malformed message; restarting it", model=self.name, pid=self.pid,
                      error=f"{type(exc).__name__}: {exc}")
        finally:
            self.alive = False
            future, self._pending = self._pending, None
            if future is not None and not future.done():
                future.set_exception(WorkerDied(
                    f"the worker process computing this request for model '{self.name}' died; it is being "
                    "restarted, retry the request"))
            await _kill(self._proc)

    def _error(self, data: Mapping[str, Any]) -> Exception:
        status = int(data.get("status", 500))
        if status >= 500 or status < 400:
            log.error("model raised during inference in a worker process", model=self.name, pid=self.pid,
                      error=data.get("message"), remote_traceback=data.get("traceback"))
            return ModelError(f"model '{self.name}' failed while computing the answer; the server log has the "
                              "details under this request's X-Request-ID")
        return RemoteError(status, str(data.get("code", "bad_request")), str(data.get("message", "")),
                           data.get("field"))

    async def kill(self) -> None:
        """Kill the process now (a batch past its time limit); ``serve`` then ends and the pool restarts it."""
        await _kill(self._proc)

    @property
    def returncode(self) -> int | None:
        """The exit status once the process ended, else None."""
        return self._proc.returncode

    async def stop(self, grace_s: float = 5.0) -> None:
        """Close the worker's stdin (it exits when idle); kill it after ``grace_s`` seconds."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            async with asyncio.timeout(grace_s):
                await self._proc.wait()
        except TimeoutError:
            await _kill(self._proc)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await proc.wait()
