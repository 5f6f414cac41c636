"""Errors of the restore webhook; each carries the HTTP status it answers with."""

from __future__ import annotations

from typing import Any


class WebhookError(Exception):
    """Base class: a request the webhook refuses, with its HTTP status and a JSON-safe body."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


class MalformedRequest(WebhookError):
    """The body is not JSON, or a query parameter is unusable."""

    status = 400
    code = "BadRequest"


class Unauthorized(WebhookError):
    """The signature header is missing, malformed, stale, or matches no current secret."""

    status = 401
    code = "Unauthorized"


class RestoreNotFound(WebhookError):
    """No restore job has that id."""

    status = 404
    code = "NotFound"


class BackupNotFound(WebhookError):
    """The backup a request names (or "latest" of a cluster) does not exist."""

    status = 404
    code = "BackupNotFound"


class BackupNotRestorable(WebhookError):
    """The backup exists but is not Completed or PartiallyFailed."""

    status = 409
    code = "BackupNotRestorable"


class PayloadTooLarge(WebhookError):
    """The body exceeds the webhook's size limit."""

    status = 413
    code = "PayloadTooLarge"


class InvalidRequest(WebhookError):
    """The body is JSON but not a valid restore request (details name the fields)."""

    status = 422
    code = "InvalidRequest"


class IdempotencyConflict(WebhookError):
    """An idempotency key was reused with a different request."""

    status = 422
    code = "IdempotencyKeyReused"


class ServiceUnavailable(WebhookError):
    """A dependency (Secrets Manager, DynamoDB, SQS) failed; the client may retry with the same idempotency key."""

    status = 503
    code = "ServiceUnavailable"


class SecretUnavailable(ServiceUnavailable):
    """The webhook secret could not be read from Secrets Manager."""
