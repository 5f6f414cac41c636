"""Errors of the signed HTTP API; each carries the HTTP status it answers with."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base class: a request the API refuses, with its HTTP status and a JSON-safe body."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


class MalformedRequest(ApiError):
    """The body is not JSON, or a query parameter is unusable."""

    status = 400
    code = "BadRequest"


class Unauthorized(ApiError):
    """The signature header is missing, malformed, stale, reused, or matches no valid key of the client."""

    status = 401
    code = "Unauthorized"


class Forbidden(ApiError):
    """The caller is authenticated but its grant does not cover a cluster the request names."""

    status = 403
    code = "Forbidden"


class RestoreNotFound(ApiError):
    """No restore job has that id."""

    status = 404
    code = "NotFound"


class BackupNotFound(ApiError):
    """The backup a request names (or "latest" of a cluster) does not exist."""

    status = 404
    code = "BackupNotFound"


class BackupNotRestorable(ApiError):
    """The backup exists but is not Completed or PartiallyFailed."""

    status = 409
    code = "BackupNotRestorable"


class PayloadTooLarge(ApiError):
    """The body exceeds the API's size limit."""

    status = 413
    code = "PayloadTooLarge"


class InvalidRequest(ApiError):
    """The body is JSON but not a valid restore request (details name the fields)."""

    status = 422
    code = "InvalidRequest"


class IdempotencyConflict(ApiError):
    """An idempotency key was reused with a different request."""

    status = 422
    code = "IdempotencyKeyReused"


class ServiceUnavailable(ApiError):
    """A dependency (Secrets Manager, DynamoDB, SQS) failed; the client may retry with the same idempotency key."""

    status = 503
    code = "ServiceUnavailable"


class SecretUnavailable(ServiceUnavailable):
    """An API client's key could not be read from (or written to) Secrets Manager."""
