"""HMAC request signatures (``Lifeboat-Signature: t=<unix>,v1=<hex>``) and the rotating secret they are keyed by.

The scheme is Stripe's: the signed payload is ``f"{t}."`` followed by the raw body bytes, so a signature covers
exactly the bytes received and cannot be moved to another timestamp. Several ``v1`` values may be sent (a client
signing with both secrets during a rotation); any one that matches any valid secret is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.api.errors import PayloadTooLarge, SecretUnavailable, Unauthorized

HEADER = "Lifeboat-Signature"
SCHEME = "v1"
TOLERANCE_S = 300
MAX_BODY_BYTES = 64 * 1024
# Bounds the work a forged header can cause: every (secret, signature) pair costs one comparison.
MAX_SIGNATURES = 4

_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SignatureHeader:
    timestamp: int
    signatures: tuple[str, ...]


def sign(secret: str | bytes, body: bytes, t: int | float) -> str:
    """The header value a client sends for ``body`` at unix time ``t``."""
    return f"t={int(t)},{SCHEME}={compute(secret, body, int(t))}"


def compute(secret: str | bytes, body: bytes, t: int) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def parse_header(value: str | None) -> SignatureHeader:
    """``t=..,v1=..[,v1=..]`` -> its parts; unknown schemes are ignored (a later v2 can be sent alongside v1)."""
    if not value:
        raise Unauthorized(f"missing {HEADER} header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            raise Unauthorized(f"malformed {HEADER} header")
        if key == "t":
            if timestamp is not None or not item.isdigit() or len(item) > 12:
                raise Unauthorized(f"malformed {HEADER} header: bad timestamp")
            timestamp = int(item)
        elif key == SCHEME:
            if not _HEX_SHA256.match(item):
                raise Unauthorized(f"malformed {HEADER} header: {SCHEME} must be 64 lowercase hex digits")
            signatures.append(item)
    if timestamp is None or not signatures:
        raise Unauthorized(f"malformed {HEADER} header: needs t= and at least one {SCHEME}=")
    if len(signatures) > MAX_SIGNATURES:
        raise Unauthorized(f"malformed {HEADER} header: more than {MAX_SIGNATURES} signatures")
    return SignatureHeader(timestamp, tuple(signatures))


def match(header: SignatureHeader, body: bytes, secrets: Sequence[bytes]) -> str | None:
    """The first ``v1`` value that a secret produces for ``body``, or None.

    Every pair is compared, match or not, with ``hmac.compare_digest``: timing then says nothing about which
    secret or how many leading characters matched.
    """
    found: str | None = None
    for secret in secrets:
        expected = compute(secret, body, header.timestamp)
        for candidate in header.signatures:
            if hmac.compare_digest(expected, candidate) and found is None:
                found = candidate
    return found


class SecretSource(Protocol):
    def secrets(self) -> tuple[bytes, ...]:
        """The secrets a signature may be made with (current first)."""

    def refresh(self) -> bool:
        """Re-read the secrets if allowed now; True when they were re-read."""


class SecretsManagerSecret:
    """The signing secret from Secrets Manager: AWSCURRENT and, during a rotation, AWSPREVIOUS.

    Values are cached for ``ttl`` seconds; a signature that matches neither may mean the secret was just rotated,
    so the verifier asks for a refresh, which is granted at most once per ``min_refresh_interval`` so forged
    requests cannot turn into a flood of Secrets Manager calls.
    """

    STAGES = ("AWSCURRENT", "AWSPREVIOUS")

    def __init__(
        self,
        client: Any,
        secret_id: str,
        *,
        ttl: float = 300.0,
        min_refresh_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._ttl = ttl
        self._min_refresh = min_refresh_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._values: tuple[bytes, ...] = ()
        self._loaded_at: float | None = None

    def secrets(self) -> tuple[bytes, ...]:
        with self._lock:
            if self._loaded_at is None or self._clock() - self._loaded_at >= self._ttl:
                self._load()
            return self._values

    def refresh(self) -> bool:
        with self._lock:
            if self._loaded_at is not None and self._clock() - self._loaded_at < self._min_refresh:
                return False
            self._load()
            return True

    def _load(self) -> None:
        values = [v for v in (self._fetch(stage) for stage in self.STAGES) if v]
        if not values:
            raise SecretUnavailable(f"webhook secret {self._secret_id!r} has no AWSCURRENT value")
        self._values = tuple(dict.fromkeys(values))
        self._loaded_at = self._clock()

    def _fetch(self, stage: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.get_secret_value(SecretId=self._secret_id, VersionStage=stage)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if stage != "AWSCURRENT" and code == "ResourceNotFoundException":
                return None  # never rotated: there is no previous version
            raise SecretUnavailable(f"cannot read webhook secret {self._secret_id!r} ({stage}): {code}") from exc
        except BotoCoreError as exc:
            raise SecretUnavailable(f"cannot read webhook secret {self._secret_id!r} ({stage}): {exc}") from exc
        if response.get("SecretString") is not None:
            return str(response["SecretString"]).encode()
        binary = response.get("SecretBinary")
        return bytes(binary) if binary else None


class StaticSecrets:
    """Fixed secrets (the CLI, the sandbox, tests)."""

    def __init__(self, *secrets: str | bytes) -> None:
        self._values = tuple(s.encode() if isinstance(s, str) else s for s in secrets)

    def secrets(self) -> tuple[bytes, ...]:
        return self._values

    def refresh(self) -> bool:
        return False


class NoSecret:
    """No secret configured: every signed request is refused (503), nothing is readable or startable."""

    def secrets(self) -> tuple[bytes, ...]:
        raise SecretUnavailable("no webhook secret configured (LIFEBOAT_WEBHOOK_SECRET_ID)")

    def refresh(self) -> bool:
        return False


class SignatureVerifier:
    """Checks a request's size, signature header, timestamp window and HMAC, in that order."""

    def __init__(
        self,
        source: SecretSource,
        *,
        tolerance_s: int = TOLERANCE_S,
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._tolerance = tolerance_s
        self._max_body = max_body_bytes
        self._clock = clock

    def verify(self, header_value: str | None, body: bytes) -> str:
        """The matching ``v1`` value (an idempotency key of last resort); raises Unauthorized or PayloadTooLarge."""
        if len(body) > self._max_body:
            raise PayloadTooLarge(f"request body is {len(body)} bytes; the limit is {self._max_body}")
        header = parse_header(header_value)
        skew = header.timestamp - self._clock()
        if abs(skew) > self._tolerance:
            # Replays of an old request (and requests from a badly wrong clock) stop here.
            raise Unauthorized(f"signature timestamp is outside the {self._tolerance} s tolerance")
        found = match(header, body, self._source.secrets())
        if found is None and self._source.refresh():
            found = match(header, body, self._source.secrets())
        if found is None:
            raise Unauthorized("signature does not match")
        return found
