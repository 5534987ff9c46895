"""The byte-level JSON depth scan agrees with the parsed document, whatever the strings hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlgate.codecs.json import json_depth, loads
from mlgate.errors import JSONTooDeep

text = st.text(alphabet=st.sampled_from(list('ab[]{}"\\\\:, \u00e9\u225b')), max_size=12)
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(documents, st.booleans())
def test_depth_scan_matches_the_parsed_depth(document: Any, ascii_only: bool) -> None:
    body = json.dumps(document, ensure_ascii=ascii_only).encode("utf-8")
    assert json_depth(body) == depth(document)


parseable = st.recursive(  # what orjson itself parses: finite floats, 64-bit integers
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(parseable, st.integers(min_value=0, max_value=6))
def test_loads_refuses_exactly_the_documents_deeper_than_the_limit(document: Any, limit: int) -> None:
    # loads skips the scan when the body has no more opening brackets than the limit: never a wrong answer.
    body = json.dumps(document).encode("utf-8")
    if depth(document) > limit:
        with pytest.raises(JSONTooDeep):
            loads(body, max_depth=limit)
    else:
        assert loads(body, max_depth=limit) == document
