"""JSON bodies: parse with a nesting limit and a clear error, serialise numpy arrays without copies.

Parsing uses orjson (RFC 8259). A body that orjson refuses is parsed again with the standard library, which
also accepts the ``NaN``, ``Infinity`` and ``-Infinity`` tokens many clients (Python's own ``json``) write;
whether a model takes non-finite values is decided later, per input. The nesting depth is measured on the
raw bytes before parsing (vectorised with numpy, strings excluded), so a hostile body never reaches a
recursive parser.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson

from mlgate.errors import JSONTooDeep, MalformedJSON

__all__ = ["dumps", "json_depth", "loads"]

_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays and objects in ``body``, ignoring brackets inside strings.

    ``{"a": [1, [2]]}`` has depth 3. Malformed input gives a meaningless but finite number; the parser
    reports it afterwards.
    """
    if not body:
        return 0
    raw = np.frombuffer(body, dtype=np.uint8)
    quotes = np.flatnonzero(raw == ord('"'))
    if quotes.size and b"\\" in body:
        # A quote preceded by an odd number of backslashes is escaped and does not end the string.
        keep = []
        for q in quotes.tolist():
            n = 0
            while q - n - 1 >= 0 and body[q - n - 1] == 0x5C:
                n += 1
            keep.append(n % 2 == 0)
        quotes = quotes[np.asarray(keep, dtype=bool)]
    step = _OPEN[raw].astype(np.int32)
    if quotes.size:
        toggles = np.zeros(raw.size, dtype=np.int8)
        toggles[quotes] = 1
        inside = (np.cumsum(toggles) % 2).astype(bool)
        inside[quotes] = True
        step[inside] = 0
    return int(np.cumsum(step).max(initial=0))


def loads(body: bytes, *, max_depth: int) -> Any:
    """Parse a JSON document.

    Raises MalformedJSON (400) naming the position of the first error, and JSONTooDeep (400) when the
    nesting is deeper than ``max_depth``.
    """
    depth = json_depth(body)
    if depth > max_depth:
        raise JSONTooDeep(
            f"JSON body is nested {depth} levels deep; the limit is {max_depth} "
            "(setting max_json_depth, env MLGATE_MAX_JSON_DEPTH)"
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise MalformedJSON(f"request body is not UTF-8 text: byte {exc.start} is invalid") from None
    except json.JSONDecodeError as exc:
        raise MalformedJSON(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
            f"(char {exc.pos})"
        ) from None
    except RecursionError:
        raise JSONTooDeep("JSON body is nested too deeply") from None


def dumps(obj: Any) -> bytes:
    """Serialise to JSON bytes; numpy arrays are written directly (NaN and Infinity become null)."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
