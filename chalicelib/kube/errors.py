"""Errors raised by the Kubernetes adapter; HTTP and AWS errors never leave the package unwrapped."""

from __future__ import annotations

from typing import Any

# A Status message is short; anything longer is cut so an unusual server cannot push a whole object into our logs.
_MAX_MESSAGE = 500


class KubeError(Exception):
    """Base class for every error of the Kubernetes adapter."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.method = method
        self.path = path


class Unreachable(KubeError):
    """The API server could not be reached (connection refused, timeout, TLS failure)."""


class CredentialsError(KubeError):
    """Cluster credentials could not be obtained (secret, EKS cluster, token source)."""


class InvalidKubeconfig(CredentialsError):
    """A kubeconfig is malformed or uses something we do not support."""


class InvalidResponse(KubeError):
    """The API server answered with something that is not the JSON it should be."""


class WaitTimeout(KubeError):
    """A condition was not reached within the time allowed."""


class Unauthorized(KubeError):
    """401: the credentials were rejected."""


class Forbidden(KubeError):
    """403: the credentials are not allowed to do this."""


class NotFound(KubeError):
    """404: the object or resource type does not exist."""


class Conflict(KubeError):
    """409: a conflicting write (stale resourceVersion, or the object already exists)."""


class AlreadyExists(Conflict):
    """409 AlreadyExists: an object with this name already exists."""


class Gone(KubeError):
    """410: the resource version or continue token is too old."""


class Invalid(KubeError):
    """422 Invalid or 400 BadRequest: the server refused the object or request as malformed."""


class TooManyRequests(KubeError):
    """429: the server asks us to slow down."""


class ServerError(KubeError):
    """5xx: the server (or an aggregated API behind it) failed."""


_BY_STATUS: dict[int, type[KubeError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def error_for_status(status: int, method: str, path: str, body: Any, http_reason: str | None = None) -> KubeError:
    """The error for a non-2xx answer; ``body`` is the parsed Status (or None), only its message and reason are used."""
    message = ""
    reason = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        message = str(body.get("message") or "")[:_MAX_MESSAGE]
        reason = body.get("reason") or None
    reason = reason or http_reason or None
    if status == 409 and reason == "AlreadyExists":
        cls: type[KubeError] = AlreadyExists
    elif status >= 500:
        cls = ServerError
    else:
        cls = _BY_STATUS.get(status, KubeError)
    text = f"{method} {path}: {status} {reason or ''}".rstrip()
    if message:
        text = f"{text}: {message}"
    return cls(text, status=status, reason=reason, method=method, path=path)
