"""Wire types of the REST APIs, as pydantic models (they also document the routes in OpenAPI).

Field names follow the KServe Open Inference Protocol (V2), REST section, the KServe V1 / TF-Serving
``predict`` API, and OpenAI's embeddings API. Tensor ``data`` is typed loosely here (any JSON) and checked
against the model's signature by the codecs, so that large payloads are converted by numpy rather than
element by element.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlgate.datatypes import Datatype

__all__ = [
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "ErrorBody",
    "InferenceRequest",
    "InferenceResponse",
    "LiveResponse",
    "MetadataTensor",
    "ModelMetadata",
    "ModelReadyResponse",
    "ReadyResponse",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "ServerMetadata",
    "V1ModelStatus",
    "V1PredictRequest",
    "V1PredictResponse",
]

Parameters = dict[str, Any]


class ErrorBody(BaseModel):
    """Every error response: ``error`` (V2 spec), plus a stable ``code`` and the ``field`` at fault."""

    error: str = Field(description="What is wrong and what was expected.")
    code: str = Field(description="Stable machine-readable code, e.g. invalid_input, model_not_found.")
    field: str | None = Field(default=None, description="Location in the request, e.g. inputs[0].shape.")


class LiveResponse(BaseModel):
    """``GET /v2/health/live`` (KServe V2, "Server Live")."""
    live: bool


class ReadyResponse(BaseModel):
    """``GET /v2/health/ready`` (KServe V2, "Server Ready")."""
    ready: bool


class ModelReadyResponse(BaseModel):
    """``GET /v2/models/{name}[/versions/{v}]/ready`` (KServe V2, "Model Ready")."""
    name: str
    version: str | None = None
    ready: bool
    reason: str | None = Field(default=None, description="Why the model is not ready (its load error); only "
                               "for callers with the deploy right on the model, absent otherwise.")


class ServerMetadata(BaseModel):
    """``GET /v2`` (KServe V2, "Server Metadata"): name, version and the extensions served."""
    name: str
    version: str
    extensions: list[str]


class MetadataTensor(BaseModel):
    """One input or output of a model's metadata: name, V2 datatype and shape."""
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1 marks a variable dimension; the first is the batch.")


class ModelMetadata(BaseModel):
    """``GET /v2/models/{name}`` (KServe V2, "Model Metadata")."""
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class RequestInput(BaseModel):
    """One input tensor; ``data`` is flat row-major or nested to the shape."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    shape: list[int] = Field(description="Non-negative dimensions; data holds their product of values.")
    datatype: str = Field(description="A V2 datatype: BOOL, UINT8..UINT64, INT8..INT64, FP16/32/64, BYTES.")
    parameters: Parameters | None = Field(
        default=None, description="binary_data_size: the tensor is in the binary section (binary extension).")
    data: Any = Field(default=None, description="Tensor values, flat row-major or nested; absent when binary.")


class RequestOutput(BaseModel):
    """An output the caller wants; ``parameters.classification = k`` asks for the top-k classes,
    ``parameters.binary_data = true`` for the tensor in binary (binary tensor data extension)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    """The body of ``POST /v2/models/{name}/infer`` (KServe V2, "Inference Request JSON Object")."""
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, description="Echoed in the response.")
    parameters: Parameters | None = Field(
        default=None, description="Passed to the model's runtime; binary_data_output = true: outputs in binary.")
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = Field(default=None, description="Default: every output.")


class ResponseOutput(BaseModel):
    """One output tensor of an inference response."""
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any] | None = Field(default=None, description="Flat row-major values; absent when binary.")


class InferenceResponse(BaseModel):
    """The answer to a V2 inference request (KServe V2, "Inference Response JSON Object")."""
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class V1PredictRequest(BaseModel):
    """TF-Serving / KServe V1: ``instances`` (one entry per row) or ``inputs`` (columnar), not both."""

    instances: list[Any] | None = Field(default=None, description="Rows; a dict per row for multi-input.")
    inputs: Any = Field(default=None, description="A tensor, or {input name: tensor} for multi-input.")


class V1PredictResponse(BaseModel):
    """The answer to ``POST /v1/models/{name}:predict`` (KServe V1 / TF-Serving REST)."""
    predictions: list[Any] = Field(description="One entry per row; a dict per row for multi-output.")


class V1VersionStatus(BaseModel):
    """One version's state in a V1 model status."""
    version: str
    state: str = Field(description="AVAILABLE, LOADING or UNAVAILABLE (TF-Serving's model states).")


class V1ModelStatus(BaseModel):
    """``GET /v1/models/{name}`` (KServe V1 / TF-Serving model status)."""
    name: str
    ready: bool
    model_version_status: list[V1VersionStatus]
    reason: str | None = Field(default=None, description="Why the latest version is not ready; only for callers "
                               "with the deploy right on the model, absent otherwise.")


class EmbeddingRequest(BaseModel):
    """OpenAI-compatible ``POST /v1/embeddings`` body (OpenAI API reference, "Create embeddings")."""

    model_config = ConfigDict(extra="forbid")

    input: str | list[str] = Field(description="A string, or a list of strings (at most 2048). Token arrays are "
                                               "not accepted.")
    model: str = Field(min_length=1, description="Name of an embedding model of the repository, e.g. minilm.")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="float: lists of numbers; base64: little-endian float32 bytes, base64.")
    dimensions: int | None = Field(default=None, ge=1, description="Must equal the model's embedding width.")
    user: str | None = Field(default=None, description="Accepted and ignored.")


class Embedding(BaseModel):
    """One vector of an OpenAI embeddings response (``object: "embedding"``)."""
    object: Literal["embedding"] = "embedding"
    index: int = Field(description="Position of the input this embedding answers.")
    embedding: list[float] | str = Field(description="The vector, or its float32 bytes in base64.")


class EmbeddingUsage(BaseModel):
    """Tokens read for an OpenAI embeddings request."""
    prompt_tokens: int = Field(description="Tokens of the inputs, counted by the model's tokenizer.")
    total_tokens: int


class EmbeddingResponse(BaseModel):
    """The answer to ``POST /v1/embeddings`` (OpenAI's embeddings API shape)."""
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
