"""The V2 tensor datatypes and their numpy equivalents.

Source: KServe Open Inference Protocol, "Tensor Data Types". ``BF16`` has no numpy dtype; its JSON values
are decoded to float32, which holds every bfloat16 value exactly.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BF16",
    "BYTES",
]

NUMPY_DTYPES: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BF16": np.dtype(np.float32),
    "BYTES": np.dtype(object),
}

DATATYPES: tuple[str, ...] = tuple(NUMPY_DTYPES)
INTEGER_DATATYPES = frozenset({"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"})
FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64", "BF16"})

_FROM_NUMPY: dict[str, Datatype] = {
    "b": "BOOL",
    "u1": "UINT8",
    "u2": "UINT16",
    "u4": "UINT32",
    "u8": "UINT64",
    "i1": "INT8",
    "i2": "INT16",
    "i4": "INT32",
    "i8": "INT64",
    "f2": "FP16",
    "f4": "FP32",
    "f8": "FP64",
}


def datatype_of(dtype: np.dtype[np.generic]) -> Datatype:
    """The V2 datatype for a numpy dtype; strings, bytes and objects are ``BYTES``.

    Raises ValueError for dtypes with no V2 equivalent (complex, datetime).
    """
    if dtype.kind in "USO":
        return "BYTES"
    key = "b" if dtype.kind == "b" else f"{dtype.kind}{dtype.itemsize}"
    try:
        return _FROM_NUMPY[key]
    except KeyError:
        raise ValueError(f"numpy dtype {dtype} has no V2 datatype") from None
