"""OpenAI-compatible embeddings: the ``POST /v1/embeddings`` body -> texts, and vectors -> the response.

Source: OpenAI API reference, "Embeddings" (create embeddings; the embedding object). ``input`` is a
string or a list of strings (at most 2048); token arrays (lists of integers) are refused, since the token
ids of another tokenizer mean nothing to these models. With ``encoding_format = "base64"`` each vector is
its little-endian float32 bytes, base64-encoded, as OpenAI sends it.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from pydantic import ValidationError

from mlgate.codecs.v2 import validation_error
from mlgate.errors import InvalidInput, UnsupportedFeature
from mlgate.types import EmbeddingRequest

__all__ = ["MAX_INPUTS", "encode_embeddings", "parse_embedding_request"]

MAX_INPUTS = 2048
"""Most texts in one request (OpenAI's limit)."""

_LITTLE_F4 = np.dtype("<f4")


def parse_embedding_request(body: Any) -> tuple[EmbeddingRequest, list[str]]:
    """The validated request and its texts, in order.

    Raises InvalidInput (400) for a body that is not an object, an unknown field, a missing ``model`` or
    ``input``, an empty or too long list, a non-string entry, a bad ``encoding_format`` or ``dimensions``;
    UnsupportedFeature (400) for token arrays.
    """
    if not isinstance(body, dict):
        raise InvalidInput("body: expected a JSON object with 'input' and 'model'", field="body")
    texts = _texts(body["input"]) if "input" in body else []
    try:
        request = EmbeddingRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None
    return request, texts


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise InvalidInput(f"input: expected a string or a list of strings, got {_kind(value)}", field="input")
    if not value:
        raise InvalidInput("input: the list is empty; give at least one string", field="input")
    if len(value) > MAX_INPUTS:
        raise InvalidInput(f"input: {len(value)} strings; at most {MAX_INPUTS} per request", field="input")
    if all(_is_token(v) for v in value) or all(isinstance(v, list) and all(_is_token(t) for t in v) for v in value):
        raise UnsupportedFeature(
            "input: token arrays are not supported; send the text itself, a string or a list of strings",
            field="input")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidInput(f"input[{i}]: expected a string, got {_kind(item)}", field=f"input[{i}]")
    return value


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


def encode_embeddings(*, model: str, vectors: np.ndarray, token_counts: np.ndarray | None,
                      encoding_format: str) -> dict[str, Any]:
    """The response body: ``{"object": "list", "data": [...], "model", "usage"}``.

    ``vectors`` is FP32 ``[n, D]``; ``token_counts`` INT64 ``[n]`` (usage is 0 when None).
    """
    if encoding_format == "base64":
        little = np.ascontiguousarray(vectors, dtype=_LITTLE_F4)
        rows: list[Any] = [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
    else:
        rows = list(np.ascontiguousarray(vectors, dtype=np.float32))
    tokens = int(token_counts.sum()) if token_counts is not None else 0
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
