"""The one error family of the AWS adapters: botocore errors become these, chained to the original."""

from __future__ import annotations

from typing import NoReturn

# Error codes that mean "slow down": a later attempt may pass.
_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
    }
)
_NOT_FOUND = frozenset(
    {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NotFoundException",
        "InvalidSnapshot.NotFound",
        "InvalidVolume.NotFound",
    }
)
_ACCESS_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "KMSAccessDeniedException",
        "InvalidClientTokenId",
    }
)


class AwsError(Exception):
    """An AWS call failed; ``code`` is the service's error code (or the botocore error's class name)."""

    def __init__(self, message: str, code: str = "Unknown") -> None:
        super().__init__(message)
        self.code = code


class AwsUnavailable(AwsError):
    """The service failed or could not be reached (5xx, a network error, a refused batch entry); a retry may pass."""


class Throttled(AwsUnavailable):
    """The service asked us to slow down."""


class NotFound(AwsError):
    """The queue, bus, secret, volume or snapshot does not exist."""


class AccessDenied(AwsError):
    """Our role may not make this call (or use the KMS key it needs)."""


def translate(exc: Exception, what: str) -> NoReturn:
    """Raise the family's error for a botocore ``ClientError`` / ``BotoCoreError`` met while doing ``what``.

    The message names what failed and the service's error code, never the request (it may hold a secret).
    """
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"{what}: {code}"
        if code in _THROTTLING or status == 429:
            raise Throttled(message, code) from exc
        if code in _NOT_FOUND:
            raise NotFound(message, code) from exc
        if code in _ACCESS_DENIED or status == 403:
            raise AccessDenied(message, code) from exc
        if status >= 500 or status == 0:
            raise AwsUnavailable(message, code) from exc
        raise AwsError(message, code) from exc
    raise AwsUnavailable(f"{what}: {exc}", type(exc).__name__) from exc
