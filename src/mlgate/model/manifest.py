"""The model manifest: ``model.toml`` in each model directory of the model repository.

A manifest names the model and its version, picks a runtime, points at the artifact, and declares the
input and output tensors (V2 datatype and shape, ``-1`` for a variable dimension; the first dimension is
the batch). Example::

    name = "breast-cancer"
    version = "1"
    runtime = "sklearn"
    artifact = "model.joblib"
    labels = ["malignant", "benign"]

    [[inputs]]
    name = "features"
    datatype = "FP64"
    shape = [-1, 30]

    [[outputs]]
    name = "predict"
    datatype = "INT64"
    shape = [-1]

    [batching]
    max_batch_size = 64
    max_queue_delay_ms = 2.0

An input that is an image declares how a picture becomes its tensor, for the playground's upload and
drawing pad (``ImagePreprocessing``)::

    [[inputs]]
    name = "X"
    datatype = "FP32"
    shape = [-1, 64]
    [inputs.image]
    width = 8
    height = 8
    color = "grayscale"
    value_range = [0.0, 16.0]
    invert = true

Inference engine keys: ``instances`` (worker processes, 0 = in this process), ``device`` (``cpu``, ``cuda``
or ``cuda:N``, for the runtimes that run on a GPU: keras, torch, tensorflow, xgboost, transformers), ``timeout_ms`` (the
model's request timeout) and, under ``[batching]``, ``preferred_batch_sizes`` and ``max_queue_size``.
A deterministic model may cache its answers (``mlgate.inference.cache``)::

    [cache]
    enabled = true
    ttl_s = 300                   # seconds an answer is kept
    max_entries = 1024            # answers kept per version (in memory)

An input may carry one example row (no batch dimension), which the playground's "Fill with the example"
button puts into its form; it is checked when the manifest loads (nesting, sizes, datatype, at most
``MAX_EXAMPLE_VALUES`` values)::

    [[inputs]]
    name = "features"
    datatype = "FP64"
    shape = [-1, 3]
    example = [5.1, 3.5, 1.4]

A manifest can open its model to callers without credentials and set its own rate limits::

    [access]                      # optional: open the model to callers without credentials
    anonymous = true

    [rate_limit.anonymous]        # optional: this model's limits for a tier (see mlgate.access)
    requests = "10/minute"
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError, field_validator, model_validator

from mlgate.access import ModelAccess, RateLimitTier, refuse_bool
from mlgate.datatypes import FLOAT_DATATYPES, INTEGER_DATATYPES, NUMPY_DTYPES, Datatype
from mlgate.errors import ModelLoadError

__all__ = ["MANIFEST_FILE", "MAX_DESCRIPTION_CHARS", "MAX_EXAMPLE_VALUES", "MAX_MANIFEST_BYTES", "BatchingConfig",
           "CacheConfig",
           "ImagePreprocessing", "ModelManifest", "TensorSpec", "read_manifest"]

MANIFEST_FILE = "model.toml"
MAX_MANIFEST_BYTES = 1024 * 1024
"""Largest manifest file read (``model.toml`` or MLflow's ``MLmodel``), in bytes."""
MAX_DESCRIPTION_CHARS = 10_000
"""Longest model description, in characters (as the registry API's PATCH allows)."""
MAX_EXAMPLE_VALUES = 16_384
"""Most values in one input's ``example`` row (a 64x64 RGB image is 12,288)."""
MAX_EXAMPLE_CHARS = 65_536
"""Most characters in all the texts of one BYTES input's ``example`` row."""

# Model names and versions end up in URL paths and file names: letters, digits, '.', '_' and '-' only,
# starting with a letter or digit, so that '..', '/', '%2F' and friends can never name a model.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_NAME_RE = re.compile(NAME_PATTERN)


@functools.lru_cache(maxsize=4096)  # asked several times per request, of a few names
def is_valid_name(value: str) -> bool:
    """Whether ``value`` is a legal model name or version (see ``NAME_PATTERN``)."""
    return bool(_NAME_RE.fullmatch(value)) and ".." not in value


class ImagePreprocessing(BaseModel):
    """How a picture becomes an input tensor (the playground's image upload and drawing pad).

    In order: the picture is laid on a white background (transparency becomes white), converted to
    ``color`` (grayscale: ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B``), resized to ``width`` x
    ``height`` pixels by area averaging, and each intensity ``p`` in 0..1 (``1 - p`` when ``invert``, for
    models such as digits where dark ink on white paper is the high value) mapped linearly onto
    ``value_range``. Values are laid out row by row in ``layout`` order (HWC: height, width, channel; CHW:
    channel first) and reshaped to the input's shape. ``mlgate.codecs.images.image_to_tensor`` is the
    reference implementation.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(ge=1, le=4096, description="Width in pixels after resizing.")
    height: int = Field(ge=1, le=4096, description="Height in pixels after resizing.")
    color: Literal["grayscale", "rgb"] = Field(default="grayscale", description="1 or 3 channels.")
    layout: Literal["HWC", "CHW"] = "HWC"
    value_range: tuple[FiniteFloat, FiniteFloat] = Field(
        default=(0.0, 1.0), description="Values for intensity 0 (black) and 1 (white), after ``invert``."
    )
    invert: bool = Field(default=False, description="Use 1 - intensity: dark ink becomes the high value.")

    @property
    def channels(self) -> int:
        """Channels of the decoded image: 3 for ``rgb``, else 1."""
        return 3 if self.color == "rgb" else 1

    @property
    def size(self) -> int:
        """Values per image: width * height * channels."""
        return self.width * self.height * self.channels


class TensorSpec(BaseModel):
    """One input or output tensor of a model: name, V2 datatype, shape (``-1`` = variable dimension)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=256)
    datatype: Datatype
    shape: tuple[int, ...] = Field(min_length=1, description="Dimensions; the first is the batch (-1).")
    feature_names: tuple[str, ...] | None = Field(
        default=None, description="Names of the columns of a [batch, n] input, for docs and forms."
    )
    allow_nonfinite: bool = Field(
        default=False, description="Accept NaN and +/-Infinity in a floating-point input."
    )
    image: ImagePreprocessing | None = Field(
        default=None, description="This input is one image per row, made as described (inputs only)."
    )
    example: Any = Field(
        default=None, description="One example row (the shape without its batch dimension), for the playground's "
        "'Fill with the example' button (inputs only).",
    )

    @field_validator("shape")
    @classmethod
    def _dims_valid(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < -1 for d in shape):
            raise ValueError("dimensions are sizes >= 0, or -1 for a variable dimension")
        return shape

    @field_validator("example")
    @classmethod
    def _example_frozen(cls, value: Any) -> Any:
        # Lists become tuples: the spec is frozen and hashable; JSON shows them as lists again.
        def freeze(item: Any) -> Any:
            return tuple(freeze(i) for i in item) if isinstance(item, list | tuple) else item
        return freeze(value)

    @model_validator(mode="after")
    def _example_fits(self) -> TensorSpec:
        if self.example is not None:
            _check_example(self)
        return self

    @model_validator(mode="after")
    def _image_fits(self) -> TensorSpec:
        if self.image is None:
            return self
        if self.datatype in ("BYTES", "BOOL"):
            raise ValueError(f"image: a {self.datatype} input cannot hold an image; use a numeric datatype")
        row = self.shape[1:]
        if -1 not in row and math.prod(row) != self.image.size:
            raise ValueError(
                f"image: {self.image.width}x{self.image.height}x{self.image.channels} = {self.image.size} "
                f"values do not fit a row of shape {list(row)}"
            )
        return self


def _check_example(spec: TensorSpec) -> None:
    """Raise ValueError unless ``spec.example`` is one row of ``spec``: nested to ``shape[1:]`` (a -1 dimension
    takes any length from 1), every value of the datatype (in range for integers, finite floats unless
    ``allow_nonfinite``), at most MAX_EXAMPLE_VALUES values and MAX_EXAMPLE_CHARS characters of text."""
    values: list[Any] = []

    def walk(value: Any, dims: tuple[int, ...], at: str) -> None:
        if not dims:
            if isinstance(value, tuple):
                raise ValueError(f"example{at}: a value was expected, not a list (the row's shape is "
                                 f"{list(spec.shape[1:])})")
            values.append(value)
            return
        if not isinstance(value, tuple):
            raise ValueError(f"example{at}: a list was expected (the row's shape is {list(spec.shape[1:])}; "
                             "leave out the batch dimension)")
        if dims[0] == -1 and not value:
            raise ValueError(f"example{at}: an empty list; give at least one value")
        if dims[0] not in (-1, len(value)):
            raise ValueError(f"example{at}: {len(value)} values, the input's dimension is {dims[0]}")
        if len(values) + len(value) > MAX_EXAMPLE_VALUES:
            raise ValueError(f"example: more than {MAX_EXAMPLE_VALUES} values")
        for i, item in enumerate(value):
            walk(item, dims[1:], f"{at}[{i}]")

    walk(spec.example, spec.shape[1:], "")
    datatype = spec.datatype
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in values):
            raise ValueError("example: a BYTES input's values are texts")
        if sum(len(v) for v in values) > MAX_EXAMPLE_CHARS:
            raise ValueError(f"example: more than {MAX_EXAMPLE_CHARS} characters of text")
    elif datatype == "BOOL":
        if not all(isinstance(v, bool) for v in values):
            raise ValueError("example: a BOOL input's values are true or false")
    elif datatype in INTEGER_DATATYPES:
        info = np.iinfo(NUMPY_DTYPES[datatype])  # type: ignore[type-var]  # an integer dtype here
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or not info.min <= v <= info.max:
                raise ValueError(f"example: {v!r} is not a value of {datatype} "
                                 f"(whole numbers {info.min} to {info.max})")
    elif datatype in FLOAT_DATATYPES:
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"example: {v!r} is not a number")
            if not spec.allow_nonfinite and not math.isfinite(v):
                raise ValueError(f"example: {v!r} is not finite (set allow_nonfinite to allow it)")


class BatchingConfig(BaseModel):
    """Dynamic batching of concurrent requests and the model's queue (see ``mlgate.inference.batching``).

    ``max_batch_size`` is in rows (0 turns merging off: each request runs alone); ``max_queue_delay_ms`` is
    how long the first request of a batch may wait for others, in milliseconds; a batch whose rows reach
    one of ``preferred_batch_sizes`` goes at once. ``max_queue_size`` bounds the requests waiting for
    this model (unset: the ``max_queue_size`` setting); past it, requests get 503 with Retry-After.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(default=0, ge=0, description="Most rows in one runtime call; 0: no merging.")
    max_queue_delay_ms: float = Field(
        default=0.0, ge=0.0, description="How long a batch's first request waits for more rows, in ms."
    )
    preferred_batch_sizes: tuple[int, ...] = Field(
        default=(), description="Row counts at which a batch is sent without waiting out the delay."
    )
    max_queue_size: int | None = Field(
        default=None, ge=1, description="Requests that may wait in the queue; unset: the server setting."
    )

    @field_validator("max_batch_size", "max_queue_delay_ms", "max_queue_size", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        return refuse_bool(value)

    @model_validator(mode="after")
    def _preferred_fit(self) -> BatchingConfig:
        if self.preferred_batch_sizes and not self.max_batch_size:
            raise ValueError("preferred_batch_sizes needs max_batch_size > 0")
        for size in self.preferred_batch_sizes:
            if not 1 <= size <= self.max_batch_size:
                raise ValueError(f"preferred batch size {size} is not between 1 and max_batch_size")
        return self


class CacheConfig(BaseModel):
    """The response cache of a deterministic model (see ``mlgate.inference.cache``): identical requests (same
    version, inputs and parameters) within ``ttl_s`` seconds are answered from the cache; in memory at most
    ``max_entries`` answers are kept per model version (the oldest go first)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="Cache this model's answers (only for deterministic models).")
    ttl_s: float = Field(default=300.0, gt=0, description="How long an answer is kept, in seconds.")
    max_entries: int = Field(default=1024, ge=1, description="Answers kept per model version (memory storage).")


class ModelManifest(BaseModel):
    """The parsed ``model.toml`` of one model directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(default="1", pattern=NAME_PATTERN)
    runtime: str = Field(min_length=1, description="e.g. sklearn, onnx, keras (mlgate.runtimes.RUNTIMES)")
    artifact: str = Field(min_length=1, description="Path of the artifact, relative to the model dir.")
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    labels: tuple[str, ...] | None = Field(default=None, description="Class labels, by class index.")
    batching: BatchingConfig = BatchingConfig()
    cache: CacheConfig = Field(default_factory=CacheConfig, description="[cache]: enabled, ttl_s, max_entries.")
    instances: int = Field(
        default=0, ge=0, le=64,
        description="Worker processes that run the model, each loading it; 0: run it in the server process.",
    )
    device: str = Field(
        default="cpu", pattern=r"^(cpu|cuda(:[0-9]{1,2})?)$",
        description="Where the model runs: cpu, cuda (the first GPU) or cuda:N; each instance on that device.",
    )
    timeout_ms: float | None = Field(
        default=None, gt=0,
        description="Request timeout for this model in ms (queue + compute); unset: request_timeout_ms.",
    )
    required: bool = Field(
        default=False,
        description="The server reports ready (GET /v2/health/ready) only once this model is loaded and warmed.",
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Runtime-specific options, e.g. class_name for python."
    )
    access: ModelAccess = Field(default_factory=ModelAccess, description="[access]: e.g. anonymous = true.")
    rate_limit: dict[str, RateLimitTier] = Field(
        default_factory=dict, description="[rate_limit.<tier>]: this model's limits for a tier (overrides)."
    )

    @field_validator("name", "version")
    @classmethod
    def _no_dot_dot(cls, value: str) -> str:
        if ".." in value:
            raise ValueError("must not contain '..'")
        return value

    @field_validator("instances", "timeout_ms", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        return refuse_bool(value)

    @model_validator(mode="after")
    def _names_unique(self) -> ModelManifest:
        # A repeated name makes two tensors one key of the request or the answer: refuse it at load.
        for kind, specs in (("input", self.inputs), ("output", self.outputs)):
            seen: set[str] = set()
            for spec in specs:
                if spec.name in seen:
                    raise ValueError(f"{kind} '{spec.name}' is declared twice; each {kind} needs its own name")
                seen.add(spec.name)
        for spec in self.outputs:
            if spec.example is not None:
                raise ValueError(f"output '{spec.name}': example is for inputs only")
        return self

    @field_validator("artifact")
    @classmethod
    def _artifact_inside(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or "\\" in value:
            raise ValueError("must be a relative path inside the model directory")
        return value


def read_manifest(model_dir: Path) -> ModelManifest:
    """Read and validate ``model_dir/model.toml``.

    Raises ModelLoadError naming the file and every invalid field, and for a file over ``MAX_MANIFEST_BYTES``.
    """
    path = model_dir / MANIFEST_FILE
    try:
        with path.open("rb") as fh:
            text = fh.read(MAX_MANIFEST_BYTES + 1)
        if len(text) > MAX_MANIFEST_BYTES:
            raise ModelLoadError(f"{path}: the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
        raw = tomllib.loads(text.decode("utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no {MANIFEST_FILE}") from None
    except UnicodeDecodeError as exc:
        raise ModelLoadError(f"{path}: not UTF-8 text: byte {exc.start} is invalid") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ModelLoadError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return ModelManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ModelLoadError(f"{path}: {problems}") from exc
