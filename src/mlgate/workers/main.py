"""The worker process: ``python -m mlgate.workers.main``, started by the server, one per model instance.

It reads an init message (manifest and model directory) on stdin, loads the model itself, answers
``{"ok": True, "inputs", "outputs"}`` (or ``{"ok": False, "error"}``), then answers one request at a time
until stdin closes. The protocol uses private copies of the stdin/stdout descriptors: the model's own
``print`` goes to stderr, and stdin reads /dev/null. SIGINT is ignored (a Ctrl-C reaches the whole process
group); the server ends a worker by closing its stdin, and a worker whose server died ends the same way.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mlgate.errors import MlgateError
from mlgate.memory import release_freed_heap
from mlgate.model.manifest import ModelManifest
from mlgate.runtimes import Runtime, runtime_class
from mlgate.workers.protocol import encode, read_message_sync, write_message_sync

__all__ = ["error_data", "main"]


def error_data(exc: BaseException) -> dict[str, Any]:
    """An exception as plain data: status, code, message (for the caller) and traceback (for the log)."""
    if isinstance(exc, MlgateError):
        status, code, message = int(exc.status), exc.code, exc.message
    else:
        status, code, message = 500, "model_error", f"{type(exc).__name__}: {exc}"
    return {"status": status, "code": code, "message": message,
            "field": getattr(exc, "field", None), "traceback": "".join(traceback.format_exception(exc))}


def _protocol_streams() -> tuple[BinaryIO, BinaryIO]:
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return inp, out


def _answer(runtime: Runtime, message: Any) -> list[bytes | memoryview]:
    seq = -1
    try:
        kind, seq, batch, parameters = message
        if kind != "infer":
            raise ValueError(f"unknown message {kind!r}")
        outputs = {name: np.asarray(value) for name, value in runtime.predict(batch, parameters).items()}
        return encode({"seq": seq, "outputs": outputs})
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the server as data
        return encode({"seq": seq, "error": error_data(exc)})


def main() -> int:
    """A worker process: read the init message (manifest, directory), load the runtime, answer its hello,
    then serve predict messages on stdin/stdout until EOF. Returns the exit status.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp, out = _protocol_streams()
    try:
        init = read_message_sync(inp)
    except EOFError:
        return 0
    try:
        manifest = ModelManifest.model_validate(init["manifest"])
        runtime = runtime_class(manifest.runtime)(manifest, Path(init["directory"]))
        runtime.load()
    except Exception as exc:  # noqa: BLE001 - the reason goes to the server, which marks the model FAILED
        reason = exc.message if isinstance(exc, MlgateError) else f"{type(exc).__name__}: {exc}"
        write_message_sync(out, encode({"ok": False, "error": reason}))
        return 1
    release_freed_heap()  # RSS is the model's, not its load's peak
    write_message_sync(out, encode({
        "ok": True, "pid": os.getpid(),
        "inputs": [spec.model_dump(mode="json") for spec in runtime.inputs],
        "outputs": [spec.model_dump(mode="json") for spec in runtime.outputs],
    }))
    while True:
        try:
            message = read_message_sync(inp)
        except EOFError:
            break
        write_message_sync(out, _answer(runtime, message))
    runtime.unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
