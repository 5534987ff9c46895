"""The errors mlgate raises, each with its HTTP status and a stable machine-readable code.

Only ``mlgate.protocols.errors`` turns these into HTTP responses; nothing here imports a web framework.
Messages of 4xx errors are written for the caller: they name the field and what was expected. Messages of
5xx errors are generic; the detail goes to the server log under the request id.

    MlgateError                      500 internal_error
    ├── BadRequest                   400 bad_request
    │   ├── MalformedJSON            400 malformed_json
    │   ├── JSONTooDeep              400 json_too_deep
    │   ├── InvalidInput             400 invalid_input       (datatype, shape, data, names, NaN)
    │   ├── UnsupportedFeature       400 unsupported_feature
    │   ├── InvalidArchive           400 invalid_archive     (an uploaded model dir: traversal, links, format)
    │   └── UnsupportedModel         400 unsupported_model   (e.g. /v1/embeddings on a classifier)
    ├── NotFound                     404 not_found
    │   ├── ModelNotFound            404 model_not_found
    │   ├── ModelVersionNotFound     404 model_version_not_found
    │   ├── AliasNotFound            404 alias_not_found
    │   └── JobNotFound              404 job_not_found       (unknown, or another caller's, job)
    ├── Unauthenticated              401 unauthenticated     (no credentials where they are needed)
    │   └── InvalidCredentials       401 invalid_credentials (malformed, wrong, expired or revoked key/token)
    ├── Forbidden                    403 forbidden           (a valid caller without the right)
    ├── Conflict                     409 conflict            (a name already taken; a version an alias points at)
    │   ├── VersionExists            409 version_exists      (versions are immutable once pushed)
    │   └── TooManyKeys              409 too_many_keys       (max_active_keys_per_user reached)
    │   └── JobNotFinished           409 job_not_finished    (a job's result asked for before it succeeded)
    ├── JobExpired                   410 job_expired         (the job's result was kept for jobs_result_ttl_s)
    ├── PayloadTooLarge              413 payload_too_large
    ├── RateLimited                  429 rate_limited        (Retry-After and RateLimit-* headers)
    ├── RateLimitUnavailable         503 rate_limit_unavailable (counter storage down, policy "refuse")
    ├── ModelNotReady                503 model_not_ready
    ├── DatabaseUnavailable          503 database_unavailable
    ├── QueueFull                    503 queue_full          (the model's queue is at max_queue_size)
    ├── Overloaded                   503 overloaded          (the queue's estimated wait is past the deadline)
    ├── WorkerDied                   503 worker_died         (the worker process holding the request died)
    ├── BatcherStopped               503 batcher_stopped     (the dynamic batcher's collector failed)
    ├── DeadlineExceeded             504 deadline_exceeded   (no answer within the request's timeout)
    ├── RemoteError                  any                     (an error a worker process sent back as data)
    ├── ModelError                   500 model_error         (the model raised during inference)
    └── ModelLoadError               500 model_load_error    (never sent: a broken model dir at start-up)
"""

from __future__ import annotations

from http import HTTPStatus

__all__ = [
    "AliasNotFound",
    "BadRequest",
    "BatcherStopped",
    "Conflict",
    "DatabaseUnavailable",
    "DeadlineExceeded",
    "Forbidden",
    "InvalidArchive",
    "InvalidCredentials",
    "InvalidInput",
    "JobExpired",
    "JobNotFinished",
    "JobNotFound",
    "JSONTooDeep",
    "MalformedJSON",
    "MlgateError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFound",
    "ModelNotReady",
    "ModelVersionNotFound",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "QueueFull",
    "RateLimitUnavailable",
    "RateLimited",
    "RemoteError",
    "TooManyKeys",
    "Unauthenticated",
    "UnsupportedFeature",
    "UnsupportedModel",
    "VersionExists",
    "WorkerDied",
]


class MlgateError(Exception):
    """Base of every error mlgate raises on purpose.

    ``status`` is the HTTP status the error maps to, ``code`` a stable identifier clients may branch on,
    and ``field`` (when known) the location in the request that is wrong, e.g. ``inputs[0].shape``.
    """

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"
    retry_after_s: float | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadRequest(MlgateError):
    """The request is wrong; ``field`` names where. The parent of every 400."""

    status = HTTPStatus.BAD_REQUEST
    code = "bad_request"


class MalformedJSON(BadRequest):
    """The body is not valid JSON in UTF-8; the message names the position of the first error."""

    code = "malformed_json"


class JSONTooDeep(BadRequest):
    """The JSON body nests arrays and objects deeper than the setting ``max_json_depth``."""

    code = "json_too_deep"


class InvalidInput(BadRequest):
    """The request is well-formed but its content does not fit the model: a missing or unknown input, a
    wrong datatype or shape, unequal batch sizes, NaN where the model takes none. ``field`` says where (400).
    """
    code = "invalid_input"


class UnsupportedFeature(BadRequest):
    """A protocol feature or parameter mlgate does not offer, or not for this model (e.g. OpenAI ``dimensions``
    other than the model's width)."""

    code = "unsupported_feature"


class UnsupportedModel(BadRequest):
    """The model exists but cannot answer this kind of request (its signature does not fit the route)."""

    code = "unsupported_model"


class NotFound(MlgateError):
    """What the request names does not exist. The parent of every 404."""

    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class ModelNotFound(NotFound):
    """No model of this name is served (neither in the model repository nor in the registry)."""

    code = "model_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"model '{name}' is not in the model repository", field="model_name")
        self.name = name


class ModelVersionNotFound(NotFound):
    """The model exists but has no such version or alias; the message lists the versions it has."""

    code = "model_version_not_found"

    def __init__(self, name: str, version: str, available: list[str], hint: str = "") -> None:
        have = ", ".join(repr(v) for v in available) or "none"
        super().__init__(
            f"model '{name}' has no version '{version}' (available: {have}){hint}", field="model_version"
        )


class PayloadTooLarge(MlgateError):
    """The request body is over its limit (``max_body_bytes``, or ``registry_max_upload_bytes`` for a push);
    refused without reading it."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"

    def __init__(self, limit_bytes: int, setting: str = "max_body_bytes") -> None:
        super().__init__(
            f"request body is larger than the limit of {limit_bytes} bytes "
            f"(setting {setting}, env MLGATE_{setting.upper()})"
        )
        self.limit_bytes = limit_bytes


class ModelNotReady(MlgateError):
    """The model exists but is not loaded (still loading, failed to load, or unloaded); try again later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "model_not_ready"
    retry_after_s = 5.0


class ModelError(MlgateError):
    """The model itself raised while computing an answer; the caller sees a generic message."""

    code = "model_error"


class ModelLoadError(MlgateError):
    """A model directory could not be read or loaded (bad manifest, missing or unloadable artifact)."""

    code = "model_load_error"


class InvalidArchive(BadRequest):
    """An uploaded model directory archive is refused before anything is unpacked."""

    code = "invalid_archive"


class AliasNotFound(NotFound):
    """The model has no alias of this name (registry alias operations)."""

    code = "alias_not_found"

    def __init__(self, name: str, alias: str) -> None:
        super().__init__(f"model '{name}' has no alias '{alias}'", field="alias")


class Conflict(MlgateError):
    """The change conflicts with the catalog's state (409), e.g. deleting a version an alias points at."""
    status = HTTPStatus.CONFLICT
    code = "conflict"


class VersionExists(Conflict):
    """A push names a version the model already has (409); versions are immutable."""
    code = "version_exists"

    def __init__(self, name: str, version: str) -> None:
        super().__init__(
            f"model '{name}' already has a version '{version}'; versions are immutable, push a new version",
            field="version",
        )


class TooManyKeys(Conflict):
    """The user already holds as many active API keys as ``max_active_keys_per_user`` allows."""

    code = "too_many_keys"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="user")


class JobNotFound(NotFound):
    """No job with this id that the caller may see (another caller's job is not found either)."""

    code = "job_not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job '{job_id}'", field="job_id")


class JobNotFinished(Conflict):
    """The job has no result (yet, or ever: it is queued, running, failed or cancelled); the body says which."""

    code = "job_not_finished"


class JobExpired(MlgateError):
    """The job finished, but its result was dropped after the retention time (``jobs_result_ttl_s``)."""

    status = HTTPStatus.GONE
    code = "job_expired"


class DatabaseUnavailable(MlgateError):
    """The registry database cannot be reached; serving goes on, registry changes wait."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "database_unavailable"
    retry_after_s = 5.0


class QueueFull(MlgateError):
    """The model's queue already holds ``max_queue_size`` waiting requests; try again shortly."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "queue_full"
    retry_after_s = 1.0


class Overloaded(MlgateError):
    """Admission control: the model's queue would make the request miss its deadline, so it is refused at once
    rather than queued to time out. ``retry_after_s``: when the estimated wait fits again."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "overloaded"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = max(1.0, retry_after_s)


class WorkerDied(MlgateError):
    """The worker process computing this request died (it is being restarted); the request is lost."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "worker_died"
    retry_after_s = 1.0


class BatcherStopped(MlgateError):
    """The dynamic batcher of the model stopped unexpectedly; queued requests fail with this."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "batcher_stopped"
    retry_after_s = 5.0


class DeadlineExceeded(MlgateError):
    """No answer within the request's timeout (header X-Request-Timeout-Ms, manifest, settings)."""

    status = HTTPStatus.GATEWAY_TIMEOUT
    code = "deadline_exceeded"


class RemoteError(MlgateError):
    """An MlgateError raised inside a worker process, rebuilt from the plain data it sent back."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.status = HTTPStatus(status)
        self.code = code


class Unauthenticated(MlgateError):
    """The route needs credentials and the request has none. Answered with ``WWW-Authenticate: Bearer``."""

    status = HTTPStatus.UNAUTHORIZED
    code = "unauthenticated"
    challenge = 'Bearer realm="mlgate"'

    def __init__(self, message: str = "authentication required: send 'Authorization: Bearer <API key or "
                 "access token>'", *, field: str | None = "headers.authorization") -> None:
        super().__init__(message, field=field)


class InvalidCredentials(Unauthenticated):
    """A key, token or password that is malformed, unknown, wrong, expired or revoked (the body never says which;
    the server log does)."""

    code = "invalid_credentials"
    challenge = 'Bearer realm="mlgate", error="invalid_token"'

    def __init__(self, message: str = "invalid, expired or revoked credentials", *,
                 field: str | None = "headers.authorization") -> None:
        super().__init__(message, field=field)


class Forbidden(MlgateError):
    """A valid caller without the right. For a model the caller may not use, the body is the same whether the
    model exists or not."""

    status = HTTPStatus.FORBIDDEN
    code = "forbidden"


class RateLimited(MlgateError):
    """Over a rate limit or quota. ``retry_after_s`` says when the limit allows this cost again."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = max(1.0, retry_after_s)


class RateLimitUnavailable(MlgateError):
    """The rate-limit counters cannot be reached and the policy is to refuse (``rate_limit_on_storage_error``)."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "rate_limit_unavailable"
    retry_after_s = 5.0

    def __init__(self) -> None:
        super().__init__("rate limits cannot be checked right now; try again shortly")
