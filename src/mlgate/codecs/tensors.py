"""JSON values <-> numpy arrays for one tensor, checked against a V2 datatype.

Used by both protocol codecs. Conversion is done by numpy in C (``np.asarray`` over the parsed list);
only BYTES tensors touch each element in Python.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from mlgate.datatypes import FLOAT_DATATYPES, INTEGER_DATATYPES, NUMPY_DTYPES
from mlgate.errors import InvalidInput

__all__ = ["from_json_data", "to_json_data"]

_KIND_NAMES = {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers with a fraction",
               "U": "strings", "S": "strings", "O": "mixed values or null"}


def from_json_data(data: Any, datatype: str, field: str) -> np.ndarray:
    """Convert the JSON ``data`` of a tensor (flat or nested lists) to a numpy array of ``datatype``.

    Returns an array of the nested shape (1-D for flat data). BYTES become an object array of ``bytes``.
    Raises InvalidInput naming ``field`` for ragged lists, values of the wrong JSON type, and integers out
    of the datatype's range.
    """
    if not isinstance(data, list):
        data = [data]
    try:
        raw = np.asarray(data)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"{field} is a ragged nested list; nested data must be rectangular", field=field
        ) from None
    if raw.size == 0:
        return np.zeros(raw.shape, dtype=NUMPY_DTYPES[datatype])
    kind = raw.dtype.kind
    got = _KIND_NAMES.get(kind) or str(raw.dtype)
    if datatype == "BYTES":
        if kind != "U":
            raise InvalidInput(f"{field} must hold strings for datatype BYTES, got {got}", field=field)
        out = np.empty(raw.shape, dtype=object)
        out.ravel()[:] = [s.encode("utf-8") for s in raw.ravel().tolist()]
        return out
    if datatype == "BOOL":
        if kind != "b":
            raise InvalidInput(f"{field} must hold true/false for datatype BOOL, got {got}", field=field)
        return raw
    if kind in "iuf" and _holds_bool(data, raw.ndim):
        raise InvalidInput(f"{field} mixes booleans (true/false) with numbers; {datatype} takes numbers only",
                           field=field)
    if datatype in INTEGER_DATATYPES:
        if kind not in "iu":
            raise InvalidInput(f"{field} must hold integers for datatype {datatype}, got {got}", field=field)
        info = np.iinfo(str(NUMPY_DTYPES[datatype]))
        low, high = int(raw.min()), int(raw.max())
        if low < info.min or high > info.max:
            raise InvalidInput(
                f"{field} has values outside the range of {datatype} [{info.min}, {info.max}]", field=field
            )
        return raw.astype(NUMPY_DTYPES[datatype], copy=False)
    if datatype in FLOAT_DATATYPES:
        if kind not in "iuf":
            raise InvalidInput(f"{field} must hold numbers for datatype {datatype}, got {got}", field=field)
        if raw.dtype == NUMPY_DTYPES[datatype]:
            return raw
        with np.errstate(over="ignore"):
            converted = raw.astype(NUMPY_DTYPES[datatype], copy=False)
        if converted.dtype.itemsize < raw.dtype.itemsize and np.isinf(converted).any() and np.isfinite(raw).all():
            raise InvalidInput(f"{field} has values outside the range of {datatype}", field=field)
        return converted
    raise InvalidInput(f"{field}: unknown datatype {datatype}", field=field)  # pragma: no cover


def _holds_bool(data: list[Any], ndim: int) -> bool:
    # numpy turns [true, 2.5] into [1.0, 2.5]; look at the element types (at C speed) to refuse that.
    items: Any = data
    for _ in range(ndim - 1):
        items = itertools.chain.from_iterable(items)
    return bool in set(map(type, items))


def to_json_data(array: np.ndarray) -> Any:
    """A flat, row-major JSON-serialisable view of ``array`` (numpy for numbers, a list for BYTES)."""
    flat = array.reshape(-1)
    if flat.dtype.kind in "biuf" and flat.dtype != np.float16:
        return np.ascontiguousarray(flat)
    if flat.dtype.kind in "SO":
        return [_text(v) for v in flat.tolist()]
    return flat.tolist()


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return value
