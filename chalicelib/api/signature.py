"""Request signatures: ``Lifeboat-Signature: keyId=<client id>,t=<unix>,v1=<hex>`` over a canonical request.

``v1 = HMAC-SHA256(client key, canonical)`` where ``canonical`` is the newline-joined timestamp, method, path,
sorted query string, ``Idempotency-Key`` header and the SHA-256 of the body (docs/api.md has a worked example).
Newlines separate the parts because none of them can contain one (a path or query is URL-encoded, a header value
cannot hold a newline), so no two requests share a canonical form. Each signature is accepted once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from chalicelib.api.errors import PayloadTooLarge, Unauthorized
from chalicelib.api.grants import Caller

HEADER = "Lifeboat-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "v1"
TOLERANCE_S = 300  # how old a signature may be
FUTURE_S = 30  # how far ahead of the server's clock a client's may be
MAX_BODY_BYTES = 64 * 1024
# Bounds the work a forged header can cause: every (key, signature) pair costs one comparison.
MAX_SIGNATURES = 4
MAX_HEADER = 1024

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII only: str.isdigit() accepts '²', which int() refuses
CLIENT_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


@dataclass(frozen=True)
class SignedRequest:
    """The parts of a request a signature covers."""

    method: str
    path: str  # as routed, without the API Gateway stage: /v1/restores/r-...
    query: tuple[tuple[str, str], ...] = ()
    idempotency_key: str = ""
    body: bytes = b""

    @classmethod
    def of(
        cls,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> SignedRequest:
        """The signed parts of a request as a route sees it (header names are case-insensitive)."""
        lowered = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
        items = tuple((str(k), str(v)) for k, v in (query or {}).items())
        return cls(method.upper(), path, items, lowered.get(IDEMPOTENCY_HEADER.lower(), ""), body or b"")

    def canonical(self, t: int) -> bytes:
        parts = (str(t), self.method, self.path, canonical_query(self.query), self.idempotency_key)
        return "\n".join((*parts, hashlib.sha256(self.body).hexdigest())).encode()


def canonical_query(items: Sequence[tuple[str, str]]) -> str:
    """``k=v`` pairs, each side percent-encoded (RFC 3986 unreserved characters kept), sorted, joined by ``&``."""
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in items)
    return "&".join(f"{k}={v}" for k, v in encoded)


def compute(secret: str | bytes, request: SignedRequest, t: int) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, request.canonical(t), hashlib.sha256).hexdigest()


def sign(client_id: str, secret: str | bytes, request: SignedRequest, t: int | float) -> str:
    """The header value a client sends for ``request`` at unix time ``t``."""
    return f"keyId={client_id},t={int(t)},{SCHEME}={compute(secret, request, int(t))}"


@dataclass(frozen=True)
class SignatureHeader:
    key_id: str
    timestamp: int
    signatures: tuple[str, ...]


def parse_header(value: str | None) -> SignatureHeader:
    """``keyId=..,t=..,v1=..[,v1=..]`` -> its parts; unknown schemes are ignored (a later v2 can be sent alongside)."""
    if not value:
        raise Unauthorized(f"missing {HEADER} header")
    if len(value) > MAX_HEADER:
        raise Unauthorized(f"malformed {HEADER} header: longer than {MAX_HEADER} characters")
    key_id: str | None = None
    timestamp: int | None = None
    signatures: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            raise Unauthorized(f"malformed {HEADER} header")
        if key == "keyId":
            if key_id is not None or not CLIENT_ID.fullmatch(item):
                raise Unauthorized(f"malformed {HEADER} header: bad keyId")
            key_id = item
        elif key == "t":
            if timestamp is not None or not _DIGITS.fullmatch(item):
                raise Unauthorized(f"malformed {HEADER} header: bad timestamp")
            timestamp = int(item)
        elif key == SCHEME:
            if not _HEX_SHA256.fullmatch(item):
                raise Unauthorized(f"malformed {HEADER} header: {SCHEME} must be 64 lowercase hex digits")
            signatures.append(item)
    if key_id is None or timestamp is None or not signatures:
        raise Unauthorized(f"malformed {HEADER} header: needs keyId=, t= and at least one {SCHEME}=")
    if len(signatures) > MAX_SIGNATURES:
        raise Unauthorized(f"malformed {HEADER} header: more than {MAX_SIGNATURES} signatures")
    return SignatureHeader(key_id, timestamp, tuple(signatures))


def match(header: SignatureHeader, request: SignedRequest, secrets: Sequence[bytes]) -> str | None:
    """The first ``v1`` value that a key produces for ``request``, or None.

    Every pair is compared, match or not, with ``hmac.compare_digest``: timing then says nothing about which
    key or how many leading characters matched.
    """
    found: str | None = None
    for secret in secrets:
        expected = compute(secret, request, header.timestamp)
        for candidate in header.signatures:
            if hmac.compare_digest(expected, candidate) and found is None:
                found = candidate
    return found


@dataclass(frozen=True)
class ClientKeys:
    """A client that may sign now, with the keys valid now (current first)."""

    caller: Caller
    secrets: tuple[bytes, ...]


class KeySource(Protocol):
    def keys(self, client_id: str, now: float) -> ClientKeys | None:
        """The client's valid keys, or None for an unknown or revoked client."""


class UsedSignatures(Protocol):
    def claim(self, digest: str, *, client_id: str, expires_at: int) -> bool:
        """True for the first use of ``digest``."""


@dataclass(frozen=True)
class Verified:
    caller: Caller
    signature: str  # the matching v1 value
    resent: bool = False  # the same signed request (and idempotency key) was accepted before


class SignatureVerifier:
    """Checks size, header, timestamp window, client, HMAC and single use, in that order."""

    def __init__(
        self,
        keys: KeySource,
        used: UsedSignatures,
        *,
        tolerance_s: int = TOLERANCE_S,
        future_s: int = FUTURE_S,
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._used = used
        self._tolerance = tolerance_s
        self._future = future_s
        self._max_body = max_body_bytes
        self._clock = clock

    def verify(self, header_value: str | None, request: SignedRequest, *, resend_ok: bool = False) -> Verified:
        """The caller; Unauthorized or PayloadTooLarge otherwise.

        ``resend_ok``: a route whose effect is deduplicated by the idempotency key accepts an exact resend of a
        request that carries one (a client retrying after a timeout gets the original answer); anything else is
        refused the second time.
        """
        if len(request.body) > self._max_body:
            raise PayloadTooLarge(f"request body is {len(request.body)} bytes; the limit is {self._max_body}")
        header = parse_header(header_value)
        now = self._clock()
        if header.timestamp < now - self._tolerance:
            # Replays of an old request (and requests from a badly wrong clock) stop here.
            raise Unauthorized(f"signature timestamp is older than {self._tolerance} s")
        if header.timestamp > now + self._future:
            # A future timestamp would stretch the window a captured request can be replayed in.
            raise Unauthorized(f"signature timestamp is more than {self._future} s ahead of the server's clock")
        keys = self._keys.keys(header.key_id, now)
        if keys is None:
            raise Unauthorized(f"unknown or revoked API client {header.key_id!r}")
        found = match(header, request, keys.secrets)
        if found is None:
            raise Unauthorized("signature does not match", client_id=header.key_id)
        digest = hashlib.sha256(f"{header.key_id}.{found}".encode()).hexdigest()
        expires_at = header.timestamp + self._tolerance + 60
        if not self._used.claim(digest, client_id=header.key_id, expires_at=expires_at):
            if not (resend_ok and request.idempotency_key):
                raise Unauthorized("signature already used", client_id=header.key_id)
            return Verified(keys.caller, found, resent=True)
        return Verified(keys.caller, found)
