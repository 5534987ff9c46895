"""Text embeddings over the data plane: which models give them, and running a list of texts through one.

A model is an *embedding model* when its signature is: one BYTES input ``[-1]`` (a text per row) and an
FP32 output ``[-1, D]`` named ``embedding`` (or, failing that, its only FP32 ``[-1, D]`` output). An INT64
``[-1]`` output named ``token_count`` gives the tokens read per row, for usage accounting. The
``sentence-transformers`` runtime has this signature; a ``python`` or ``onnx`` model may too.

Texts go through ``DataPlane.infer`` like every V2 or V1 request, so dynamic batching, worker processes and
deadlines apply to them unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlgate.errors import ModelError, UnsupportedFeature, UnsupportedModel
from mlgate.inference.dataplane import DataPlane
from mlgate.inference.registry import ModelHandle
from mlgate.model.manifest import TensorSpec

__all__ = ["EmbeddingSignature", "Embeddings", "embed", "embedding_signature"]


@dataclass(frozen=True)
class EmbeddingSignature:
    """Which tensors of a model make it an embedding model (see ``embedding_signature``)."""
    input: str
    """The BYTES ``[-1]`` input."""
    output: str
    """The FP32 ``[-1, D]`` output."""
    dimensions: int
    """D, the embedding width; -1 when the model declares it variable (known after a call)."""
    token_count: str | None
    """The INT64 ``[-1]`` output counting tokens, if the model has one."""


@dataclass(frozen=True)
class Embeddings:
    """The answer to one embeddings request: vectors, and token counts when the model reports them."""
    vectors: np.ndarray
    """FP32 ``[n, D]``, row i for text i."""
    token_counts: np.ndarray | None
    """INT64 ``[n]`` tokens read per text, or None when the model does not count them."""


def embedding_signature(handle: ModelHandle) -> EmbeddingSignature:
    """The embedding signature of ``handle``'s model; UnsupportedModel (400) when it has none."""
    texts = [s for s in handle.inputs if s.datatype == "BYTES" and len(s.shape) == 1]
    vectors = [s for s in handle.outputs if s.datatype == "FP32" and len(s.shape) == 2]
    named = [s for s in vectors if s.name == "embedding"]
    if len(handle.inputs) != 1 or not texts or not (named or len(vectors) == 1):
        raise UnsupportedModel(
            f"model '{handle.name}' is not an embedding model: it takes "
            f"{_describe(handle.inputs)} and gives {_describe(handle.outputs)}, while an embedding model takes "
            "one BYTES [-1] input (a text per row) and gives an FP32 [-1, D] output", field="model")
    output = (named or vectors)[0]
    counts = [s for s in handle.outputs if s.name == "token_count" and s.datatype == "INT64" and len(s.shape) == 1]
    return EmbeddingSignature(input=texts[0].name, output=output.name, dimensions=output.shape[1],
                              token_count=counts[0].name if counts else None)


def _describe(specs: Sequence[TensorSpec]) -> str:
    parts = [f"{s.name} {s.datatype} {list(s.shape)}" for s in specs]
    return ", ".join(parts) or "nothing declared"


async def embed(plane: DataPlane, handle: ModelHandle, texts: Sequence[str],
                dimensions: int | None = None, *, timeout_ms: float | None = None,
                parameters: Mapping[str, Any] | None = None, admission: bool = True) -> Embeddings:
    """Embed ``texts`` (n >= 1) with ``handle``'s model: FP32 ``[n, D]`` vectors and their token counts.

    ``dimensions``, when given, must equal D: these models cannot shorten their vectors, so any other value
    is UnsupportedFeature (400) before anything runs. Raises UnsupportedModel (400) for a model without an
    embedding signature, and what ``DataPlane.infer`` raises. ``timeout_ms`` can shorten the model's timeout;
    ``parameters`` and ``admission`` go to ``DataPlane.infer`` (a job: its progress callback, no admission).
    """
    signature = embedding_signature(handle)
    if dimensions is not None and signature.dimensions not in (-1, dimensions):
        raise _wrong_dimensions(handle, dimensions, signature.dimensions)
    batch = np.empty(len(texts), dtype=object)
    batch[:] = [text.encode("utf-8") for text in texts]
    outputs = await plane.infer(handle, {signature.input: batch}, parameters, timeout_ms=timeout_ms,
                                admission=admission)
    vectors = outputs.get(signature.output)
    if vectors is None or vectors.ndim != 2:
        raise ModelError(f"model '{handle.name}' version '{handle.version}' answered with a malformed output; "
                         "the server log has the details under this request's X-Request-ID")
    if dimensions is not None and vectors.shape[1] != dimensions:
        raise _wrong_dimensions(handle, dimensions, vectors.shape[1])
    counts = outputs.get(signature.token_count) if signature.token_count else None
    return Embeddings(vectors=np.ascontiguousarray(vectors, dtype=np.float32),
                      token_counts=None if counts is None else counts.astype(np.int64, copy=False))


def _wrong_dimensions(handle: ModelHandle, asked: int, width: int) -> UnsupportedFeature:
    return UnsupportedFeature(
        f"dimensions: model '{handle.name}' gives {width}-dimensional embeddings and cannot shorten them; "
        f"leave 'dimensions' out or set it to {width} (asked for {asked})", field="dimensions")
