"""JSON bodies: parse with a nesting limit and a clear error, serialise numpy arrays without copies.

Parsing uses orjson (RFC 8259). A body that orjson refuses is parsed again with the standard library, which
also accepts the ``NaN``, ``Infinity`` and ``-Infinity`` tokens many clients (Python's own ``json``) write;
whether a model takes non-finite values is decided later, per input. The nesting depth is measured on the
raw bytes before parsing (vectorised with numpy, strings excluded), so a hostile body never reaches a
recursive parser.
"""

from __future__ import annotations

import json
import sys
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
        # run[i] = number of consecutive backslashes ending at byte i (0 where byte i is not one).
        is_bs = raw == 0x5C
        count = np.cumsum(is_bs, dtype=np.int64)
        run = count - np.maximum.accumulate(np.where(is_bs, 0, count))
        before = np.where(quotes > 0, run[np.maximum(quotes - 1, 0)], 0)
        quotes = quotes[before % 2 == 0]
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

    Raises MalformedJSON (400) naming the position of the first error or an integer of more digits than
    Python converts (4300 by default), and JSONTooDeep (400) when the nesting is deeper than ``max_depth``.
    """
    # The depth is at most the number of opening brackets (strings included), counted in C: most bodies
    # need no scan at all.
    depth = 0 if body.count(b"[") + body.count(b"{") <= max_depth else json_depth(body)
    if depth > max_depth:
        raise JSONTooDeep(
            f"JSON body is nested {depth} levels deep; the limit is {max_depth} "
            "(setting max_json_depth, env MLGATE_MAX_JSON_DEPTH)"
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # RFC 8259 section 8.1: JSON exchanged between systems is UTF-8. Decoding strictly here also keeps the
    # byte-level depth scan above valid (no other encoding reaches the parser).
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJSON(f"request body is not UTF-8 text: byte {exc.start} is invalid") from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedJSON(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
            f"(char {exc.pos})"
        ) from None
    except RecursionError:
        raise JSONTooDeep("JSON body is nested too deeply") from None
    except ValueError:  # an integer beyond sys.get_int_max_str_digits() (CVE-2020-10735's limit)
        raise MalformedJSON(f"request body holds an integer of more than {sys.get_int_max_str_digits()} "
                            "digits; send numbers within the model's datatype") from None
    try:
        orjson.dumps(parsed)  # what orjson refused but json took must still be text we can write back
    except TypeError:
        raise MalformedJSON(
            "request body holds a \\u escape of a lone UTF-16 surrogate, which is not a character"
        ) from None
    return parsed


def dumps(obj: Any) -> bytes:
    """Serialise to JSON bytes; numpy arrays are written directly (NaN and Infinity become null)."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
