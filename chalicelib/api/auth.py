"""Who is calling (an API client whose signature matches, once) and whether its grant covers a cluster."""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.api.errors import Forbidden
from chalicelib.api.grants import Action, Caller
from chalicelib.api.responses import lower_headers
from chalicelib.api.signature import HEADER, SignatureVerifier, SignedRequest, Verified
from chalicelib.observability import logger


def authenticate(
    verifier: SignatureVerifier, headers: Mapping[str, str], request: SignedRequest, *, resend_ok: bool = False
) -> Verified:
    """The verified caller; raises Unauthorized (or PayloadTooLarge, SecretUnavailable) from the verifier."""
    return verifier.verify(lower_headers(headers).get(HEADER.lower()), request, resend_ok=resend_ok)


def require(caller: Caller, action: Action, cluster: str) -> None:
    """Forbidden (403) unless the caller's grant covers ``action`` on ``cluster``; a denial is logged by client id."""
    if not caller.may(action, cluster):
        logger().warning(
            "request denied by grant", extra={"client_id": caller.client_id, "action": str(action), "cluster": cluster}
        )
        raise Forbidden(f"API client {caller.client_id!r} may not {action.value} cluster {cluster!r}")
