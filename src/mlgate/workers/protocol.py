"""Messages between the server and a worker process, over the worker's stdin and stdout pipes.

A message is one frame: ``!4sII`` (the magic ``MLGW``, pickle length, buffer count), one ``!Q`` length per
buffer, the pickle (protocol 5), then the buffers. A frame without the magic (a stream corrupted by stray
output) raises UnpicklingError at once instead of waiting for a length read from garbage. Array data
travels out of band (PEP 574): it is written from the arrays' own memory and read into fresh buffers,
never through JSON or per-element Python objects.

Only plain data crosses: dicts, lists, str, bytes, numbers and numpy arrays. Errors cross as a dict
``{"status", "code", "message", "traceback"}``, never as pickled exceptions. Both sides read with an
unpickler that refuses every global except numpy's array, dtype and scalar constructors.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # the worker process never needs asyncio: keep it out of its memory
    import asyncio

__all__ = ["encode", "read_message", "read_message_sync", "write_message_sync"]

MAGIC = b"MLGW"
_HEAD = struct.Struct("!4sII")
_LEN = struct.Struct("!Q")

# numpy's pickling of arrays, dtypes and scalars (numpy 1.x lives in numpy.core, 2.x in numpy._core).
_NUMPY_MODULES = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric"}
_NUMPY_NAMES = {"_frombuffer", "_reconstruct", "dtype", "ndarray", "scalar"}
_BUILTINS = {"complex", "set", "frozenset", "bytearray"}


def encode(message: Any) -> list[bytes | memoryview]:
    """The frame of ``message`` as a list of parts to write in order (array memory is not copied)."""
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    head = _HEAD.pack(MAGIC, len(payload), len(raws)) + b"".join(_LEN.pack(raw.nbytes) for raw in raws)
    return [head, payload, *raws]


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module in _NUMPY_MODULES and name in _NUMPY_NAMES) or (module == "builtins" and name in _BUILTINS):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a worker message may not name {module}.{name}")


def _sizes(head: bytes | bytearray) -> tuple[int, int]:
    magic, size, count = _HEAD.unpack(head)
    if magic != MAGIC:
        raise pickle.UnpicklingError(f"not a worker message (starts with {bytes(head[:12])!r})")
    return size, count


def _decode(payload: bytes, buffers: Sequence[bytes | bytearray]) -> Any:
    return _PlainDataUnpickler(io.BytesIO(payload), buffers=buffers).load()


async def read_message(reader: asyncio.StreamReader) -> Any:
    """Read one frame (server side). IncompleteReadError at end of stream, UnpicklingError for anything
    but plain data."""
    size, count = _sizes(await reader.readexactly(_HEAD.size))
    lengths = struct.unpack(f"!{count}Q", await reader.readexactly(_LEN.size * count)) if count else ()
    payload = await reader.readexactly(size)
    buffers = [await reader.readexactly(n) for n in lengths]
    return _decode(payload, buffers)


def _read_exactly(stream: BinaryIO, n: int) -> bytearray:
    data = bytearray(n)
    view = memoryview(data)
    got = 0
    while got < n:
        chunk = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not chunk:
            raise EOFError("the stream ended inside a message" if got else "end of stream")
        got += chunk
    return data


def read_message_sync(stream: BinaryIO) -> Any:
    """Read one frame (worker side, blocking); arrays come back writable. EOFError at end of stream."""
    size, count = _sizes(_read_exactly(stream, _HEAD.size))
    lengths = struct.unpack(f"!{count}Q", _read_exactly(stream, _LEN.size * count)) if count else ()
    payload = bytes(_read_exactly(stream, size))
    buffers = [_read_exactly(stream, n) for n in lengths]
    return _decode(payload, buffers)


def write_message_sync(stream: BinaryIO, parts: list[bytes | memoryview]) -> None:
    """Write an encoded frame and flush it (worker side, blocking)."""
    for part in parts:
        stream.write(part)
    stream.flush()
