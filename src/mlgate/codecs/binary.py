"""The V2 binary tensor data extension: tensors as raw bytes after the JSON of a request or response.

Source: Triton Inference Server, "Binary Tensor Data Extension" (also in KServe's Open Inference Protocol
docs). A body is a JSON object followed by tensor bytes; the ``Inference-Header-Content-Length`` header gives
the JSON's length in bytes. An input whose ``parameters.binary_data_size`` is set takes that many bytes of
the binary section, the inputs' bytes following each other in the order of ``inputs``. Tensor bytes are
little-endian, row-major, unpadded: BOOL is one byte (0 or 1) per element, BYTES is each element's 4-byte
little-endian unsigned length followed by its bytes. An output is answered in binary when its
``parameters.binary_data`` is true or, absent that, when the request's ``parameters.binary_data_output``
is true; it then carries ``parameters.binary_data_size`` instead of ``data``.

Numeric tensors are decoded with ``np.frombuffer`` over the request body, without a copy and without a
Python object per element (a copy is made only when a tensor starts at an offset its dtype cannot be read
from aligned). BYTES elements are necessarily one ``bytes`` object each.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import numpy as np

from mlgate.datatypes import NUMPY_DTYPES
from mlgate.errors import InvalidInput

__all__ = ["HEADER", "decode_tensor", "encode_tensor", "split_body"]

HEADER = "Inference-Header-Content-Length"
"""Request and response header: the length in bytes of the JSON that starts the body."""

_HEADER_FIELD = "headers.inference-header-content-length"
_LENGTH = struct.Struct("<I")


def split_body(body: bytearray, header_value: str) -> tuple[bytes, memoryview]:
    """Split a body into its JSON part and its binary section (a view, no copy).

    Raises InvalidInput (400) when the header is not a non-negative integer or exceeds the body's length.
    """
    value = header_value.strip()
    if not value.isdigit():
        raise InvalidInput(f"{HEADER} must be the length in bytes of the JSON part, a non-negative integer; "
                           f"got {header_value!r}", field=_HEADER_FIELD)
    length = int(value)
    if length > len(body):
        raise InvalidInput(f"{HEADER} is {length} but the body holds only {len(body)} bytes", field=_HEADER_FIELD)
    view = memoryview(body)
    return bytes(view[:length]), view[length:]


def decode_tensor(raw: memoryview, datatype: str, shape: Sequence[int], field: str) -> np.ndarray:
    """The tensor of ``datatype`` and ``shape`` held in ``raw`` (exactly its bytes), as a numpy array.

    BYTES become an object array of ``bytes``; BF16 becomes float32. Raises InvalidInput naming ``field``
    when the size does not match the shape, a BYTES element runs past the end, or a BOOL byte is not 0/1.
    """
    count = math.prod(shape)
    if datatype == "BYTES":
        return _decode_bytes(raw, count, field).reshape(shape)
    itemsize = 2 if datatype == "BF16" else NUMPY_DTYPES[datatype].itemsize
    if len(raw) != count * itemsize:
        raise InvalidInput(
            f"{field}.parameters.binary_data_size: {len(raw)} bytes, but shape {list(shape)} of {datatype} "
            f"takes {count * itemsize} ({count} x {itemsize})", field=f"{field}.parameters.binary_data_size")
    if datatype == "BF16":
        # bfloat16 is the upper half of a float32: widen without rounding.
        halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
        return (halves << 16).view(np.float32).reshape(shape)
    if datatype == "BOOL":
        octets = np.frombuffer(raw, dtype=np.uint8)
        if octets.size and int(octets.max()) > 1:
            raise InvalidInput(f"{field}: BOOL elements are single bytes 0 or 1, found {int(octets.max())}",
                               field=f"{field}.parameters.binary_data_size")
        return octets.view(np.bool_).reshape(shape)
    array = np.frombuffer(raw, dtype=NUMPY_DTYPES[datatype].newbyteorder("<"))
    if not array.dtype.isnative:
        array = array.astype(NUMPY_DTYPES[datatype])
    elif not array.flags.aligned:
        array = array.copy()
    return array.reshape(shape)


def _decode_bytes(raw: memoryview, count: int, field: str) -> np.ndarray:
    out = np.empty(count, dtype=object)
    offset, end = 0, len(raw)
    for i in range(count):
        if offset + 4 > end:
            raise InvalidInput(f"{field}: the binary data ends before the length of BYTES element {i} "
                               f"(of {count})", field=f"{field}.parameters.binary_data_size")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInput(f"{field}: BYTES element {i} says {length} bytes, but only {end - offset} remain",
                               field=f"{field}.parameters.binary_data_size")
        out[i] = bytes(raw[offset:offset + length])
        offset += length
    if offset != end:
        raise InvalidInput(f"{field}.parameters.binary_data_size: {end} bytes, but the {count} BYTES elements "
                           f"of the shape take {offset}", field=f"{field}.parameters.binary_data_size")
    return out


def encode_tensor(array: np.ndarray, datatype: str) -> bytes:
    """``array`` as the extension's bytes for ``datatype`` (little-endian, row-major)."""
    if datatype == "BYTES":
        parts = []
        for value in array.reshape(-1).tolist():
            data = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    if datatype == "BF16":
        # Round float32 to the nearest bfloat16, ties to even (NaN stays NaN: its high half is still NaN).
        bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        nan = np.isnan(array.reshape(bits.shape))
        rounded[nan] = bits[nan] >> 16
        return rounded.astype("<u2").tobytes()
    return np.ascontiguousarray(array, dtype=NUMPY_DTYPES[datatype].newbyteorder("<")).tobytes()
