"""The API's request signatures: canonical requests, per-client keys with a rotation grace, single use, fuzzing."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.api import signature
from chalicelib.api.client_secrets import ClientSecretStore
from chalicelib.api.clients import CatalogKeySource
from chalicelib.api.errors import ApiError, PayloadTooLarge, SecretUnavailable, Unauthorized
from chalicelib.api.grants import Caller, Grant
from chalicelib.api.signature import (
    MAX_BODY_BYTES,
    ClientKeys,
    SignatureVerifier,
    SignedRequest,
    canonical_query,
    parse_header,
    sign,
)
from chalicelib.catalog.api_clients import ApiClientRecord
from chalicelib.catalog.errors import RecordNotFound
from tests.support.clocks import SecondsClock

NOW = 1_800_000_000
CLIENT = "ci"
BODY = b'{"backup_id": "20261122T101500Z-3fa9c2", "target_cluster": "dr"}'
REQUEST = SignedRequest("POST", "/v1/restores", (), "deploy-42", BODY)


class StaticKeys:
    """Fixed keys per client (current first)."""

    def __init__(self, *secrets: str, client_id: str = CLIENT) -> None:
        self.client_id = client_id
        self.secrets = tuple(s.encode() for s in secrets)

    def keys(self, client_id: str, now: float) -> ClientKeys | None:
        if client_id != self.client_id:
            return None
        return ClientKeys(Caller(client_id, Grant.from_dict({})), self.secrets)


class Ledger:
    def __init__(self) -> None:
        self.used: dict[str, int] = {}

    def claim(self, digest: str, *, client_id: str, expires_at: int) -> bool:
        if digest in self.used:
            return False
        self.used[digest] = expires_at
        return True


def verifier(*secrets: str, now: float = NOW, ledger: Ledger | None = None) -> SignatureVerifier:
    return SignatureVerifier(StaticKeys(*secrets), ledger or Ledger(), clock=lambda: now)


def header_for(secret: str, request: SignedRequest = REQUEST, t: int = NOW, client: str = CLIENT) -> str:
    return sign(client, secret, request, t)


# -- the scheme ---------------------------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_over_the_canonical_request() -> None:
    body_hash = hashlib.sha256(BODY).hexdigest()
    canonical = f"{NOW}\nPOST\n/v1/restores\n\ndeploy-42\n{body_hash}".encode()
    expected = hmac.new(b"s3cret", canonical, hashlib.sha256).hexdigest()
    assert header_for("s3cret") == f"keyId={CLIENT},t={NOW},v1={expected}"


def test_query_is_sorted_and_percent_encoded() -> None:
    assert (
        canonical_query([("limit", "20"), ("cluster", "prod a"), ("a", "x/y")]) == "a=x%2Fy&cluster=prod%20a&limit=20"
    )
    one = SignedRequest.of("get", "/v1/backups", {"limit": "5", "cluster": "prod"})
    other = SignedRequest.of("GET", "/v1/backups", {"cluster": "prod", "limit": "5"})
    assert one.canonical(NOW) == other.canonical(NOW)


def test_valid_signature_returns_the_caller_and_matching_value() -> None:
    header = header_for("s3cret")
    verified = verifier("s3cret").verify(header, REQUEST)
    assert verified.signature == header.split("v1=")[1] and verified.caller.client_id == CLIENT


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(Unauthorized, match="does not match"):
        verifier("s3cret").verify(header_for("other"), REQUEST)


def test_unknown_client_is_refused() -> None:
    with pytest.raises(Unauthorized, match="unknown or revoked"):
        verifier("s3cret").verify(header_for("s3cret", client="someone-else"), REQUEST)


def test_previous_secret_is_valid_while_the_source_offers_it() -> None:
    v = verifier("new-secret", "old-secret")
    assert v.verify(header_for("old-secret"), REQUEST)
    other = SignedRequest("POST", "/v1/restores", (), "deploy-43", BODY)
    assert v.verify(header_for("new-secret", other), other)


def test_any_of_several_signatures_may_match() -> None:
    good = header_for("new-secret").split(",")[2]
    header = f"{header_for('retired')},{good}"
    assert verifier("new-secret").verify(header, REQUEST).signature == good.removeprefix("v1=")


@pytest.mark.parametrize(
    "tampered",
    [
        pytest.param(SignedRequest("POST", "/v1/restores", (), "deploy-42", BODY + b" "), id="body"),
        pytest.param(SignedRequest("POST", "/v1/restores", (), "deploy-42", b""), id="empty-body"),
        pytest.param(SignedRequest("POST", "/v1/restores", (), "deploy-43", BODY), id="idempotency-key"),
        pytest.param(SignedRequest("POST", "/v1/restores", (), "", BODY), id="no-idempotency-key"),
        pytest.param(SignedRequest("PUT", "/v1/restores", (), "deploy-42", BODY), id="method"),
        pytest.param(SignedRequest("POST", "/v1/policies", (), "deploy-42", BODY), id="path"),
        pytest.param(SignedRequest("POST", "/v1/restores", (("a", "b"),), "deploy-42", BODY), id="query"),
    ],
)
def test_every_signed_part_is_covered(tampered: SignedRequest) -> None:
    with pytest.raises(Unauthorized, match="does not match"):
        verifier("s3cret").verify(header_for("s3cret"), tampered)


def test_an_empty_body_signature_opens_only_its_own_route() -> None:
    # Before: t.body over b"" read every GET route for five minutes. Now the path and the query are signed.
    read = SignedRequest.of("GET", "/v1/backups", {"cluster": "prod"})
    header = header_for("s3cret", read)
    v = verifier("s3cret")
    for other in (SignedRequest.of("GET", "/v1/backups", {"cluster": "dr"}), SignedRequest.of("GET", "/v1/policies")):
        with pytest.raises(Unauthorized, match="does not match"):
            v.verify(header, other)
    assert v.verify(header, read)


def test_signature_cannot_be_moved_to_another_timestamp() -> None:
    digest = header_for("s3cret", t=NOW - 10).split("v1=")[1]
    with pytest.raises(Unauthorized):
        verifier("s3cret").verify(f"keyId={CLIENT},t={NOW},v1={digest}", REQUEST)


@pytest.mark.parametrize("skew", [-301, -3600])
def test_old_timestamps_are_refused(skew: int) -> None:
    with pytest.raises(Unauthorized, match="older than"):
        verifier("s3cret").verify(header_for("s3cret", t=NOW + skew), REQUEST)


@pytest.mark.parametrize("skew", [31, 301, 86400])
def test_future_timestamps_beyond_30_s_are_refused(skew: int) -> None:
    with pytest.raises(Unauthorized, match="ahead of the server"):
        verifier("s3cret").verify(header_for("s3cret", t=NOW + skew), REQUEST)


@pytest.mark.parametrize("skew", [-300, 0, 30])
def test_timestamps_inside_the_window_are_accepted(skew: int) -> None:
    assert verifier("s3cret").verify(header_for("s3cret", t=NOW + skew), REQUEST)


HEX = "a" * 64


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"keyId={CLIENT},t={NOW}",
        f"keyId={CLIENT},v1={HEX}",
        f"t={NOW},v1={HEX}",
        f"keyId={CLIENT},t=abc,v1={HEX}",
        f"keyId={CLIENT},t=-5,v1={HEX}",
        f"keyId={CLIENT},t=²,v1={HEX}",
        f"keyId={CLIENT},t=１２３,v1={HEX}",
        f"keyId={CLIENT},t={NOW},v1=nothex",
        f"keyId={CLIENT},t={NOW},v1={'A' * 64}",
        f"keyId={CLIENT},t={NOW},t={NOW},v1={HEX}",
        f"keyId={CLIENT},keyId=x,t={NOW},v1={HEX}",
        f"keyId=Bad/Id,t={NOW},v1={HEX}",
        f"keyId={CLIENT},t={NOW},v1={'a' * 63}",
        f"keyId={CLIENT},t={NOW}," + ",".join([f"v1={HEX}"] * 5),
        f"keyId={CLIENT},t={NOW},v1={HEX}," + "x=" * 600,
    ],
)
def test_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        verifier("s3cret").verify(header, REQUEST)


def test_unknown_schemes_are_ignored() -> None:
    header = f"{header_for('s3cret')},v0=deadbeef"
    parsed = parse_header(header)
    assert parsed.timestamp == NOW and parsed.key_id == CLIENT and len(parsed.signatures) == 1
    assert verifier("s3cret").verify(header, REQUEST)


def test_oversized_body_is_refused_before_anything_else() -> None:
    big = SignedRequest("POST", "/v1/restores", (), "", b"x" * (MAX_BODY_BYTES + 1))
    with pytest.raises(PayloadTooLarge):
        verifier("s3cret").verify(header_for("s3cret", big), big)
    with pytest.raises(PayloadTooLarge):
        verifier("s3cret").verify(None, big)
    exact = SignedRequest("POST", "/v1/restores", (), "", b"x" * MAX_BODY_BYTES)
    assert verifier("s3cret").verify(header_for("s3cret", exact), exact)


def test_comparisons_are_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    v = verifier("current", "previous")
    header = f"{header_for('nope')},{header_for('previous').split(',')[2]}"
    assert v.verify(header, REQUEST)
    # Every (key, signature) pair is compared, even after a match: timing says nothing about which one matched.
    assert len(calls) == 4
    with pytest.raises(Unauthorized):
        v.verify(header_for("nope"), REQUEST)
    assert len(calls) == 6


# -- single use ---------------------------------------------------------------------------------------------------


def test_a_signature_is_accepted_once() -> None:
    ledger = Ledger()
    v = verifier("s3cret", ledger=ledger)
    read = SignedRequest.of("GET", "/v1/backups", {"cluster": "prod"})
    header = header_for("s3cret", read)
    assert v.verify(header, read)
    with pytest.raises(Unauthorized, match="already used"):
        v.verify(header, read)
    # The digest is kept until the timestamp has left the window (the catalog's TTL removes it after that).
    assert list(ledger.used.values()) == [NOW + signature.TOLERANCE_S + 60]


def test_an_exact_resend_with_an_idempotency_key_passes_where_the_route_deduplicates() -> None:
    v = verifier("s3cret")
    header = header_for("s3cret")
    assert not v.verify(header, REQUEST, resend_ok=True).resent
    assert v.verify(header, REQUEST, resend_ok=True).resent
    with pytest.raises(Unauthorized, match="already used"):
        v.verify(header, REQUEST)  # a route that does not deduplicate refuses it


def test_a_resend_without_an_idempotency_key_is_refused_even_where_the_route_deduplicates() -> None:
    bare = SignedRequest("POST", "/v1/restores", (), "", BODY)
    v = verifier("s3cret")
    header = header_for("s3cret", bare)
    assert v.verify(header, bare, resend_ok=True)
    with pytest.raises(Unauthorized, match="already used"):
        v.verify(header, bare, resend_ok=True)


# -- fuzzing: malformed input is a 4xx, never a 500, never an accepted forgery -------------------------------------

_HEADER_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
_PART = st.one_of(
    st.sampled_from(["keyId=ci", "keyId=", "t=", f"t={NOW}", "v1=", f"v1={HEX}", "v2=x", "=", ",", "t=²", "t=٣"]),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["keyId", "t", "v1", "x"]), _HEADER_TEXT),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.one_of(st.none(), _HEADER_TEXT, st.lists(_PART, max_size=8).map(",".join)), body=st.binary(max_size=256)
)
def test_fuzzed_headers_are_refused_with_a_4xx(header: str | None, body: bytes) -> None:
    request = SignedRequest("POST", "/v1/restores", (), "", body)
    with pytest.raises(ApiError) as caught:
        verifier("s3cret").verify(header, request)
    assert 400 <= caught.value.status < 500


@settings(max_examples=200, deadline=None)
@given(
    digest=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    t=st.integers(min_value=NOW - 300, max_value=NOW + 30),
    body=st.binary(max_size=256),
    key=st.text(max_size=40),
)
def test_fuzzed_forgeries_are_never_accepted(digest: str, t: int, body: bytes, key: str) -> None:
    request = SignedRequest("POST", "/v1/restores", (), key, body)
    if hmac.compare_digest(digest, signature.compute("s3cret", request, t)):
        return  # hypothesis found the key by chance: not a forgery
    with pytest.raises(Unauthorized):
        verifier("s3cret").verify(f"keyId={CLIENT},t={t},v1={digest}", request)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=512))
def test_fuzzed_bodies_never_break_parsing(body: bytes) -> None:
    from chalicelib.api.models import parse_request

    try:
        parse_request(body)
    except ApiError as exc:
        assert exc.status in (400, 422)  # noqa: PT017 -- most bodies are refused, some parse


# -- the client's keys from the catalog and Secrets Manager --------------------------------------------------------


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


class FakeClients:
    def __init__(self, record: ApiClientRecord | None) -> None:
        self.record = record

    def get(self, client_id: str) -> ApiClientRecord:
        if self.record is None or self.record.client_id != client_id:
            raise RecordNotFound(client_id)
        return self.record


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def record(**fields: Any) -> ApiClientRecord:
    return ApiClientRecord(client_id=CLIENT, secret_id="lifeboat/api-clients/ci", **fields)


def source(stages: dict[str, str], rec: ApiClientRecord | None, **kwargs: Any) -> tuple[CatalogKeySource, Any]:
    client = FakeSecretsManager(stages)
    return CatalogKeySource(FakeClients(rec), ClientSecretStore(client), **kwargs), client  # type: ignore[arg-type]


def test_keys_are_current_and_previous_within_the_grace_period() -> None:
    rotated = record(rotated_at=iso(NOW - 60), previous_valid_until=iso(NOW + 3540))
    keys, _ = source({"AWSCURRENT": "new", "AWSPREVIOUS": "old"}, rotated)
    found = keys.keys(CLIENT, NOW)
    assert found is not None and found.secrets == (b"new", b"old")


def test_the_previous_key_is_refused_after_the_grace_period() -> None:
    rotated = record(rotated_at=iso(NOW - 7200), previous_valid_until=iso(NOW - 3600))
    keys, _ = source({"AWSCURRENT": "new", "AWSPREVIOUS": "old"}, rotated)
    found = keys.keys(CLIENT, NOW)
    assert found is not None and found.secrets == (b"new",)
    v = SignatureVerifier(keys, Ledger(), clock=lambda: NOW)
    with pytest.raises(Unauthorized, match="does not match"):
        v.verify(header_for("old"), REQUEST)
    assert v.verify(header_for("new"), REQUEST)


def test_a_never_rotated_key_has_only_current() -> None:
    keys, _ = source({"AWSCURRENT": "only"}, record())
    found = keys.keys(CLIENT, NOW)
    assert found is not None and found.secrets == (b"only",)


def test_unknown_and_revoked_clients_have_no_keys() -> None:
    keys, _ = source({"AWSCURRENT": "k"}, record(revoked_at=iso(NOW - 1)))
    assert keys.keys(CLIENT, NOW) is None and keys.keys("other", NOW) is None


def test_missing_current_key_is_unavailable_not_unauthorized() -> None:
    keys, _ = source({}, record())
    with pytest.raises(SecretUnavailable):
        keys.keys(CLIENT, NOW)


def test_keys_are_cached_for_the_ttl() -> None:
    clock = SecondsClock()
    keys, client = source({"AWSCURRENT": "a"}, record(), ttl=300, monotonic=clock)
    keys.keys(CLIENT, NOW)
    calls = client.calls
    clock.now += 299
    keys.keys(CLIENT, NOW)
    assert client.calls == calls
    client.stages["AWSCURRENT"] = "b"
    clock.now += 2
    found = keys.keys(CLIENT, NOW)
    assert found is not None and found.secrets == (b"b",) and client.calls > calls


def test_a_rotation_recorded_in_the_catalog_is_seen_at_once() -> None:
    clock = SecondsClock()
    clients = FakeClients(record())
    sm = FakeSecretsManager({"AWSCURRENT": "old"})
    keys = CatalogKeySource(clients, ClientSecretStore(sm), ttl=300, monotonic=clock)  # type: ignore[arg-type]
    v = SignatureVerifier(keys, Ledger(), clock=lambda: NOW)
    assert v.verify(header_for("old"), REQUEST)
    sm.stages = {"AWSCURRENT": "new", "AWSPREVIOUS": "old"}
    clients.record = record(rotated_at=iso(NOW), previous_valid_until=iso(NOW + 3600))
    fresh = SignedRequest("POST", "/v1/restores", (), "deploy-43", BODY)
    assert v.verify(header_for("new", fresh), fresh)
    # Forged requests cost one catalog read each and no Secrets Manager call once the keys are cached.
    calls = sm.calls
    for _ in range(5):
        with pytest.raises(Unauthorized):
            v.verify(header_for("forged"), REQUEST)
    assert sm.calls == calls


def test_grants_round_trip_and_refuse_unknown_actions() -> None:
    grant = Grant.parse(["read=prod,dr", "restore_from=prod", "restore_into=dr", "policies=*"])
    assert Grant.from_dict(grant.to_dict()) == grant
    from chalicelib.api.grants import Action, InvalidGrant

    assert grant.allows(Action.READ, "dr") and grant.allows(Action.POLICIES, "anything")
    assert not grant.allows(Action.RESTORE_INTO, "prod") and not grant.allows(Action.RESTORE_FROM, "dr")
    for bad in (["admin=prod"], ["read"], ["read=a/b"]):
        with pytest.raises(InvalidGrant):
            Grant.parse(bad)


def test_grace_defaults_to_one_hour() -> None:
    from chalicelib.api.clients import DEFAULT_GRACE

    assert timedelta(hours=1) == DEFAULT_GRACE


def test_the_worked_example_of_docs_api_md() -> None:
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    body = b'{"backup_id":"20261122T101500Z-3fa9c2","target_cluster":"dr"}'
    key = "0f3c9a6e5b7d41e2a8c4f1b0d9e6a3c7"
    post = SignedRequest.of("POST", "/v1/restores", None, {"Idempotency-Key": "deploy-42"}, body)
    read = SignedRequest.of("GET", "/v1/backups", {"limit": "20", "cluster": "prod"})
    assert sign("deploy-bot", key, post, 1795000000) in docs
    assert sign("deploy-bot", key, read, 1795000005) in docs
    assert hashlib.sha256(body).hexdigest() in docs
