"""API errors, rendered as the `Status` bodies kube-apiserver sends (same reasons, messages and details)."""

from __future__ import annotations

from typing import Any

import orjson

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Gone",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

# Messages the real server uses when nothing more specific is known (k8s.io/apimachinery/pkg/api/errors).
GENERIC_MESSAGES = {
    400: "the server rejected our request for an unknown reason",
    401: "Unauthorized",
    403: "forbidden",
    404: "the server could not find the requested resource",
    405: "the server does not allow this method on the requested resource",
    409: "the server reported a conflict",
    410: "the server has asked for the client to try again later",
    422: "the server rejected our request due to an error in our request",
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still be processing the request",
}


class ApiError(Exception):
    """An error answered to the client as a `Status` object with an HTTP status code."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason if reason is not None else REASONS.get(code, "")
        self.details = details
        self.headers = headers or {}
        self.metadata = metadata or {}

    def body(self) -> bytes:
        return status_body(self.code, self.message, self.reason, self.details, self.metadata)


def status_body(
    code: int, message: str, reason: str, details: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None
) -> bytes:
    status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": metadata or {}, "status": "Failure"}
    if message:
        status["message"] = message
    if reason:
        status["reason"] = reason
    if details is not None:
        status["details"] = details
    status["code"] = code
    return orjson.dumps(status)


def success_body(details: dict[str, Any]) -> bytes:
    return orjson.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})


def qualified_details(group: str, plural: str, name: str | None = None) -> dict[str, Any]:
    """`details` as the server fills it for resource errors: kind is the resource (plural), group only if set."""
    details: dict[str, Any] = {}
    if name is not None:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = plural
    return details


def group_resource(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        404, f'{group_resource(group, plural)} "{name}" not found', details=qualified_details(group, plural, name)
    )


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'{group_resource(group, plural)} "{name}" already exists',
        "AlreadyExists",
        qualified_details(group, plural, name),
    )


def conflict(group: str, plural: str, name: str, cause: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {group_resource(group, plural)} "{name}": {cause}',
        details=qualified_details(group, plural, name),
    )


STALE_CAUSE = "the object has been modified; please apply your changes to the latest version and try again"


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def resource_not_found() -> ApiError:
    return ApiError(404, GENERIC_MESSAGES[404], details={})


def method_not_allowed() -> ApiError:
    return ApiError(405, GENERIC_MESSAGES[405], details={})


class FieldError:
    """One validation failure, rendered like field.Error in the real server."""

    __slots__ = ("field", "kind", "value", "detail")

    def __init__(self, field: str, kind: str, value: Any = None, detail: str = "") -> None:
        self.field = field
        self.kind = kind  # "Required", "Invalid", "Forbidden", "Unsupported", "TooLong"
        self.value = value
        self.detail = detail

    def message(self) -> str:
        if self.kind == "Required":
            text = "Required value"
        elif self.kind == "Forbidden":
            text = "Forbidden"
        elif self.kind == "Unsupported":
            text = f"Unsupported value: {_go_repr(self.value)}"
        else:
            text = f"Invalid value: {_go_repr(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def cause(self) -> dict[str, str]:
        reasons = {
            "Required": "FieldValueRequired",
            "Forbidden": "FieldValueForbidden",
            "Unsupported": "FieldValueNotSupported",
        }
        return {"reason": reasons.get(self.kind, "FieldValueInvalid"), "message": self.message(), "field": self.field}


def _go_repr(value: Any) -> str:
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in value.items()) + "}"
    return "null" if value is None else orjson.dumps(value).decode()


def invalid(group: str, kind: str, name: str, errors: list[FieldError]) -> ApiError:
    qualified = f"{kind}.{group}" if group else kind
    parts = [f"{e.field}: {e.message()}" for e in errors]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [e.cause() for e in errors]
    return ApiError(422, f'{qualified} "{name}" is invalid: {joined}', details=details)


def forbidden(group: str, plural: str, name: str | None, user: str, verb: str, namespace: str | None) -> ApiError:
    target = f'{group_resource(group, plural)} "{name}"' if name else group_resource(group, plural)
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return ApiError(
        403,
        f'{target} is forbidden: User "{user}" cannot {verb} resource "{plural}" in API group "{group}" {scope}',
        details=qualified_details(group, plural, name),
    )


def fault(code: int, retry_after: int | None = None) -> ApiError:
    """A made-up failure for fault injection, shaped like the one the real server sends for that code."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None and code in (429, 503) else {}
    details: dict[str, Any] | None = None
    if retry_after is not None and code in (429, 503):
        details = {"retryAfterSeconds": retry_after}
    message = GENERIC_MESSAGES.get(code, f"injected fault ({code})")
    reason = "Expired" if code == 410 else REASONS.get(code, "")
    return ApiError(code, message, reason, details, headers=headers)
