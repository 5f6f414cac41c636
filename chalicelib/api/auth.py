"""Who may call the API: a caller API Gateway authenticated with IAM (SigV4), or one whose HMAC signature matches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.api.responses import lower_headers
from chalicelib.api.signature import HEADER, SignatureVerifier


def authorize(
    verifier: SignatureVerifier, headers: Mapping[str, str], body: bytes, identity: Mapping[str, Any] | None
) -> bool:
    """True when the request was authorized by its HMAC signature over ``body``, False when by IAM.

    Raises Unauthorized (or PayloadTooLarge, SecretUnavailable) from the verifier otherwise.
    """
    # API Gateway fills identity.userArn only after it verified a SigV4 (IAM) signature; without an IAM
    # authorizer on the route it is null, so it cannot be supplied by a client.
    if identity and identity.get("userArn"):
        return False
    verifier.verify(lower_headers(headers).get(HEADER.lower()), body)
    return True
