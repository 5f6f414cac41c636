"""The API's HMAC signature scheme and its rotating, cached secret."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from chalicelib.api import signature
from chalicelib.api.errors import PayloadTooLarge, SecretUnavailable, Unauthorized
from chalicelib.api.signature import (
    MAX_BODY_BYTES,
    SecretsManagerSecret,
    SignatureVerifier,
    StaticSecrets,
    parse_header,
    sign,
)
from tests.support.clocks import SecondsClock

NOW = 1_800_000_000
BODY = b'{"backup_id": "20261122T101500Z-3fa9c2", "target_cluster": {}}'


def verifier(*secrets: str, now: float = NOW) -> SignatureVerifier:
    return SignatureVerifier(StaticSecrets(*secrets), clock=lambda: now)


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign("s3cret", BODY, NOW) == f"t={NOW},v1={expected}"


def test_valid_signature_returns_the_matching_value() -> None:
    header = sign("s3cret", BODY, NOW)
    assert verifier("s3cret").verify(header, BODY) == header.split("v1=")[1]


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(Unauthorized, match="does not match"):
        verifier("s3cret").verify(sign("other", BODY, NOW), BODY)


def test_previous_secret_is_valid_during_rotation() -> None:
    v = verifier("new-secret", "old-secret")
    assert v.verify(sign("old-secret", BODY, NOW), BODY)
    assert v.verify(sign("new-secret", BODY, NOW), BODY)


def test_any_of_several_signatures_may_match() -> None:
    good = sign("new-secret", BODY, NOW).split(",")[1]
    header = f"{sign('retired', BODY, NOW)},{good}"
    assert verifier("new-secret").verify(header, BODY) == good.removeprefix("v1=")


@pytest.mark.parametrize("tampered", [BODY + b" ", BODY.replace(b"3fa9c2", b"3fa9c3"), b""])
def test_tampered_body_is_refused(tampered: bytes) -> None:
    with pytest.raises(Unauthorized):
        verifier("s3cret").verify(sign("s3cret", BODY, NOW), tampered)


def test_signature_cannot_be_moved_to_another_timestamp() -> None:
    digest = sign("s3cret", BODY, NOW - 10).split("v1=")[1]
    with pytest.raises(Unauthorized):
        verifier("s3cret").verify(f"t={NOW},v1={digest}", BODY)


@pytest.mark.parametrize("skew", [-301, -3600, 301, 86400])
def test_timestamps_outside_the_window_are_refused(skew: int) -> None:
    # Correctly signed, but too old (a replay) or from the future.
    with pytest.raises(Unauthorized, match="tolerance"):
        verifier("s3cret").verify(sign("s3cret", BODY, NOW + skew), BODY)


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_timestamps_inside_the_window_are_accepted(skew: int) -> None:
    assert verifier("s3cret").verify(sign("s3cret", BODY, NOW + skew), BODY)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"t={NOW}",
        "v1=" + "a" * 64,
        f"t=abc,v1={'a' * 64}",
        f"t=-5,v1={'a' * 64}",
        f"t={NOW},v1=nothex",
        f"t={NOW},v1={'A' * 64}",
        f"t={NOW},t={NOW},v1={'a' * 64}",
        f"t={NOW},v1={'a' * 63}",
        f"t={NOW}," + ",".join(["v1=" + "a" * 64] * 5),
    ],
)
def test_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        verifier("s3cret").verify(header, BODY)


def test_unknown_schemes_are_ignored() -> None:
    header = f"{sign('s3cret', BODY, NOW)},v0=deadbeef"
    parsed = parse_header(header)
    assert parsed.timestamp == NOW and len(parsed.signatures) == 1
    assert verifier("s3cret").verify(header, BODY)


def test_oversized_body_is_refused_before_anything_else() -> None:
    body = b"x" * (MAX_BODY_BYTES + 1)
    with pytest.raises(PayloadTooLarge):
        verifier("s3cret").verify(sign("s3cret", body, NOW), body)
    with pytest.raises(PayloadTooLarge):
        verifier("s3cret").verify(None, body)
    exact = b"x" * MAX_BODY_BYTES
    assert verifier("s3cret").verify(sign("s3cret", exact, NOW), exact)


def test_comparisons_are_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    v = verifier("current", "previous")
    header = f"{sign('nope', BODY, NOW)},{sign('previous', BODY, NOW).split(',')[1]}"
    assert v.verify(header, BODY)
    # Every (secret, signature) pair is compared, even after a match: timing says nothing about which one matched.
    assert len(calls) == 4
    with pytest.raises(Unauthorized):
        v.verify(sign("nope", BODY, NOW), BODY)
    assert len(calls) == 6


# -- the secret from Secrets Manager --------------------------------------------------------------------------------


class FakeSecretsManager:
    """Records calls; versions by stage, like Secrets Manager after a rotation."""

    def __init__(self, stages: dict[str, str]) -> None:
        self.stages = stages
        self.calls = 0

    def get_secret_value(self, SecretId: str, VersionStage: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        from botocore.exceptions import ClientError

        self.calls += 1
        if VersionStage not in self.stages:
            error = {"Error": {"Code": "ResourceNotFoundException", "Message": "no such version"}}
            raise ClientError(error, "GetSecretValue")
        return {"SecretString": self.stages[VersionStage]}


def test_secrets_manager_source_reads_current_and_previous() -> None:
    client = FakeSecretsManager({"AWSCURRENT": "new", "AWSPREVIOUS": "old"})
    assert SecretsManagerSecret(client, "lifeboat/webhook").secrets() == (b"new", b"old")


def test_a_never_rotated_secret_has_only_current() -> None:
    client = FakeSecretsManager({"AWSCURRENT": "only"})
    assert SecretsManagerSecret(client, "lifeboat/webhook").secrets() == (b"only",)


def test_missing_current_secret_is_unavailable_not_unauthorized() -> None:
    with pytest.raises(SecretUnavailable):
        SecretsManagerSecret(FakeSecretsManager({}), "lifeboat/webhook").secrets()


def test_secrets_are_cached_for_the_ttl() -> None:
    client, clock = FakeSecretsManager({"AWSCURRENT": "a"}), SecondsClock()
    source = SecretsManagerSecret(client, "id", ttl=300, clock=clock)
    source.secrets()
    calls = client.calls
    clock.now += 299
    source.secrets()
    assert client.calls == calls
    client.stages["AWSCURRENT"] = "b"
    clock.now += 2
    assert source.secrets() == (b"b",)
    assert client.calls > calls


def test_a_miss_refreshes_at_most_once_a_minute() -> None:
    client, clock = FakeSecretsManager({"AWSCURRENT": "old"}), SecondsClock()
    source = SecretsManagerSecret(client, "id", ttl=300, min_refresh_interval=60, clock=clock)
    v = SignatureVerifier(source, clock=lambda: NOW)
    assert v.verify(sign("old", BODY, NOW), BODY)
    # Rotated just now: the cached secret misses, and a refresh is allowed only once the interval has passed.
    client.stages = {"AWSCURRENT": "new", "AWSPREVIOUS": "old"}
    clock.now += 30
    before = client.calls
    with pytest.raises(Unauthorized):
        v.verify(sign("new", BODY, NOW), BODY)
    assert client.calls == before  # forged or early requests cannot make it call Secrets Manager
    clock.now += 31
    assert v.verify(sign("new", BODY, NOW), BODY)
    refreshed = client.calls
    assert refreshed > before
    for _ in range(5):
        with pytest.raises(Unauthorized):
            v.verify(sign("forged", BODY, NOW), BODY)
    assert client.calls == refreshed
