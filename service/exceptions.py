"""Domain errors, free of any HTTP framework so task handlers stay plain Python.

``service.http.errors`` maps each type to a status code and the JSON error shape. A ``loc`` here is relative
to the request document (e.g. ``("series", 2, "values")``); the HTTP layer prefixes ``"body"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ErrorDetail:
    loc: Loc
    msg: str


class ServiceError(Exception):
    """Base for every error the service reports on purpose; ``error_type`` is the machine-readable name."""

    error_type = "service_error"

    def __init__(self, message: str, details: Sequence[ErrorDetail] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = tuple(details)


class InvalidInputError(ServiceError):
    """The request is well-formed JSON but asks for something this model cannot do."""

    error_type = "invalid_input"


class ModelNotFoundError(ServiceError):
    error_type = "model_not_found"


class ModelUnavailableError(ServiceError):
    """The model exists but is not ready (failed to load), so the server cannot answer right now."""

    error_type = "model_unavailable"


class NotReadyError(ServiceError):
    error_type = "not_ready"


class InferenceTimeoutError(ServiceError):
    error_type = "timeout"


class InferenceError(ServiceError):
    """The model produced something the service cannot use: a server fault, never the client's."""

    error_type = "inference_error"


class QueueFullError(ServiceError):
    """Backpressure: the model's queue is at max_queue_rows; the client should retry shortly."""

    error_type = "overloaded"


class ReloadRefusedError(ServiceError):
    """A hot reload found a version that fails verification; the version already serving stays."""

    error_type = "reload_refused"


class PayloadTooLargeError(ServiceError):
    """A body over max_body_bytes found after decoding (decompression); plain bodies are refused earlier."""

    error_type = "payload_too_large"
