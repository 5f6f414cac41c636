"""HTTP answers without a web framework in them, and the one translation of API errors into answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.api.errors import ApiError, ServiceUnavailable, Unauthorized
from chalicelib.catalog.errors import CatalogError
from chalicelib.observability import logger


@dataclass(frozen=True)
class Reply:
    """An HTTP answer without any web framework in it: app.py turns it into a Chalice Response."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def answer(action: Callable[[], Reply], *, refused: str) -> Reply:
    """Run a route's ``action``; an ApiError becomes its status and body, a catalog failure a 503 to retry.

    ``refused`` is the log message for a request whose signature was refused.
    """
    try:
        return action()
    except ApiError as exc:
        if isinstance(exc, Unauthorized):
            # The reason helps whoever debugs a client; it goes to the log, never the header values.
            logger().warning(refused, extra={"reason": exc.message, "client_id": exc.details.get("client_id")})
            return Reply(exc.status, {"error": exc.code, "message": "invalid or missing signature"})
        return Reply(exc.status, exc.body())
    except CatalogError as exc:
        logger().exception("catalog unavailable")
        error = ServiceUnavailable(f"catalog unavailable: {type(exc).__name__}")
        return Reply(error.status, error.body(), {"Retry-After": "5"})


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names are case-insensitive; the routes look them up lower-cased."""
    return {str(k).lower(): str(v) for k, v in headers.items()}
