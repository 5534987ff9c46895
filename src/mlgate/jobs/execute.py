"""One job's request, run like the synchronous route runs it: decode -> infer -> encode, per protocol.

``validate`` checks a request at submission (the model exists and is ready, the body decodes against the
model's signature) so that a bad body is a 400 at once, never a failed job later; it returns the rows (or
texts) to charge. ``execute`` runs it and returns the response body the synchronous route would have sent:
V2 (``POST /v2/models/{name}/infer``), V1 (``:predict``) or OpenAI (``POST /v1/embeddings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import structlog

from mlgate.codecs import v1 as v1_codec
from mlgate.codecs import v2 as v2_codec
from mlgate.codecs.json import dumps
from mlgate.codecs.openai import encode_embeddings, parse_embedding_request
from mlgate.errors import DeadlineExceeded, MlgateError, UnsupportedFeature
from mlgate.inference.dataplane import DataPlane
from mlgate.inference.embeddings import embed, embedding_signature
from mlgate.inference.registry import ModelHandle
from mlgate.runtimes.base import PROGRESS_PARAMETER, Progress
from mlgate.types import InferenceRequest

__all__ = ["PROTOCOLS", "error_body", "execute", "validate"]

log = structlog.get_logger("mlgate.jobs")

PROTOCOLS = ("v2", "v1", "openai")
"""The wire protocols a job's request and result may be in."""


def _no_binary(request: InferenceRequest) -> None:
    """A job's result is JSON in the database: outputs in binary cannot be asked for."""
    wants = [("parameters.binary_data_output", request.parameters or {}, "binary_data_output")]
    wants += [(f"outputs[{i}].parameters.binary_data", o.parameters or {}, "binary_data")
              for i, o in enumerate(request.outputs or [])]
    for field, params, name in wants:
        if params.get(name):
            raise UnsupportedFeature(f"{field}: a job's result is JSON; binary outputs cannot be asked for",
                                     field=field)


def _rows(inputs: Mapping[str, Any]) -> int:
    return max((int(a.shape[0]) for a in inputs.values() if getattr(a, "ndim", 0)), default=1)


def validate(plane: DataPlane, protocol: str, model: str, version: str | None, body: Any) -> int:
    """Check a job's request before it is queued; the rows (V2, V1) or texts (OpenAI) it will cost.

    Raises ModelNotFound / ModelVersionNotFound (404), ModelNotReady (503), and the protocol codec's
    InvalidInput / UnsupportedFeature (400) for a body that the synchronous route would refuse.
    """
    handle = plane.model(model, version)
    if protocol == "v2":
        request = v2_codec.parse_request(body)
        _no_binary(request)
        return _rows(v2_codec.decode_inputs(request, handle.inputs))
    if protocol == "v1":
        return _rows(v1_codec.decode_predict(body, handle.inputs))
    _, texts = parse_embedding_request(body)
    embedding_signature(handle)
    return len(texts)


async def execute(plane: DataPlane, protocol: str, model: str, version: str | None, body: Any, *,
                  caller: str | None = None, timeout_ms: float | None = None,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Run a job's request; the JSON body the synchronous route answers with. Raises what it raises.
    ``progress`` is handed to the runtime (``mlgate.runtimes.base.PROGRESS_PARAMETER``); it also marks the
    request as a job's, which the model's queue serves in turn with synchronous calls."""
    extra = {PROGRESS_PARAMETER: progress} if progress is not None else {}
    async with plane.serving(model, version, caller=caller) as call:
        handle = call.handle
        if protocol == "v2":
            request = v2_codec.parse_request(body)
            inputs = v2_codec.decode_inputs(request, handle.inputs)
            outputs = await call.infer(inputs, {**(request.parameters or {}), **extra}, timeout_ms=timeout_ms,
                                       admission=False)  # a job waits its turn
            content, _ = v2_codec.encode_response(model_name=handle.name, model_version=handle.version,
                                                  request=request, outputs=outputs, specs=handle.outputs,
                                                  labels=handle.labels)
        elif protocol == "v1":
            inputs = v1_codec.decode_predict(body, handle.inputs)
            outputs = await call.infer(inputs, extra, timeout_ms=timeout_ms, admission=False)
            content = v1_codec.encode_predictions(outputs, handle.outputs)
        else:
            content = await _embed(plane, handle, body, timeout_ms, extra)
    result: dict[str, Any] = orjson.loads(dumps(content))  # plain JSON types, as the database stores them
    return result


async def _embed(plane: DataPlane, handle: ModelHandle, body: Any, timeout_ms: float | None,
                 extra: dict[str, Any]) -> dict[str, Any]:
    request, texts = parse_embedding_request(body)
    result = await embed(plane, handle, texts, request.dimensions, timeout_ms=timeout_ms, parameters=extra,
                         admission=False)  # a job waits its turn
    return encode_embeddings(model=handle.name, vectors=result.vectors, token_counts=result.token_counts,
                             encoding_format=request.encoding_format)


def error_body(exc: BaseException) -> dict[str, Any]:
    """What a failed job keeps of its error: ``{status, code, error, field, reason}`` (``reason``: ``timeout``
    past the model's or the job's time limit, else ``error``); a bug's detail stays in the log."""
    if isinstance(exc, MlgateError):
        reason = "timeout" if isinstance(exc, DeadlineExceeded) else "error"
        return {"status": int(exc.status), "code": exc.code, "error": exc.message, "field": exc.field,
                "reason": reason}
    log.error("job failed with an unexpected error", exc_info=exc)
    return {"status": 500, "code": "internal_error", "field": None, "reason": "error",
            "error": "internal server error; the server log has the details"}
