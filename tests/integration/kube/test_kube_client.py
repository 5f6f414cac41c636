"""KubeClient over real HTTPS against the Kubernetes API test server: retries, error mapping, objects, transport."""

from __future__ import annotations

import dataclasses
import logging
import socket
import ssl
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.kube import (
    AlreadyExists,
    ClusterCredentials,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeClient,
    NotFound,
    ServerError,
    StaticToken,
    Unauthorized,
    Unreachable,
)
from tests.support.certs import self_signed_pem
from tests.support.kube import CONFIGMAPS, SECRETS, Sleeps, configmap
from tests.support.ports import free_port


@pytest.mark.fakeonly
def test_server_errors_are_retried_with_growing_jittered_backoff(
    fake: Any, client: KubeClient, sleeps: Sleeps, test_namespace: str
) -> None:
    path = CONFIGMAPS.collection_path(test_namespace)
    fake.clear_requests()
    fake.faults.inject(500, method="GET", path=f"^{path}$", count=3)

    assert client.get(path)["kind"] == "ConfigMapList"

    # base 0.2 s doubling, each delay between half and all of its ceiling
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):
        ceiling = 0.2 * 2**attempt
        assert ceiling / 2 <= delay <= ceiling
    assert len([r for r in fake.requests if r.method == "GET" and r.path == path]) == 4


@pytest.mark.fakeonly
def test_429_honours_retry_after(fake: Any, client: KubeClient, sleeps: Sleeps, test_namespace: str) -> None:
    path = CONFIGMAPS.collection_path(test_namespace)
    fake.faults.inject(429, method="GET", path=f"^{path}$", count=2, retry_after=7)

    client.get(path)

    assert sleeps == [7.0, 7.0]


@pytest.mark.fakeonly
def test_retries_give_up_after_max_retries(fake: Any, credentials: ClusterCredentials, sleeps: Sleeps) -> None:
    fake.faults.inject(503, method="GET", path=r"^/version$", count=10)
    with KubeClient(credentials, max_retries=2, sleep=sleeps) as kube, pytest.raises(ServerError) as err:
        kube.version()
    assert err.value.status == 503
    assert (err.value.method, err.value.path) == ("GET", "/version")
    assert len(sleeps) == 2


@pytest.mark.fakeonly
def test_create_is_retried_after_a_500(fake: Any, client: KubeClient, sleeps: Sleeps, test_namespace: str) -> None:
    fake.faults.inject(500, method="POST", path=f"^{CONFIGMAPS.collection_path(test_namespace)}$", count=1)

    client.create(CONFIGMAPS, configmap("retried", test_namespace))

    assert client.get_object(CONFIGMAPS, "retried", test_namespace) is not None
    assert len(sleeps) == 1


@pytest.mark.fakeonly
def test_secret_data_stays_out_of_logs_and_errors(
    fake: Any, client: KubeClient, test_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret_value = "c3VwZXItc2VjcmV0LXZhbHVl"
    path = SECRETS.collection_path(test_namespace)
    fake.faults.inject(500, method="POST", path=f"^{path}$", count=1)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"}, "data": {"password": secret_value}}
    with caplog.at_level(logging.DEBUG):
        client.create(SECRETS, secret, test_namespace)
        with pytest.raises(AlreadyExists) as err:
            client.create(SECRETS, secret, test_namespace)
        client.get(path)
    assert secret_value not in caplog.text
    assert secret_value not in str(err.value)
    assert "retrying" in caplog.text  # the retry was logged, just not the body


def test_wrong_token_is_unauthorized(credentials: ClusterCredentials, sleeps: Sleeps) -> None:
    wrong = dataclasses.replace(
        credentials, token_provider=StaticToken("not-a-valid-token"), client_cert=None, client_key=None
    )
    with KubeClient(wrong, sleep=sleeps) as kube, pytest.raises(Unauthorized) as err:
        kube.get("/api/v1/namespaces")
    assert err.value.status == 401
    assert "GET /api/v1/namespaces: 401" in str(err.value)
    assert sleeps == []


@pytest.mark.fakeonly
def test_forbidden(fake: Any, client: KubeClient, test_namespace: str) -> None:
    fake.forbid("secrets")
    with pytest.raises(Forbidden) as err:
        list(client.list_pages(SECRETS.collection_path(test_namespace)))
    assert (err.value.status, err.value.reason) == (403, "Forbidden")
    assert "secrets" in str(err.value)


@pytest.mark.parametrize("status", [403, 404, 409, 410, 422])
@pytest.mark.fakeonly
def test_injected_statuses_map_to_their_errors(fake: Any, client: KubeClient, sleeps: Sleeps, status: int) -> None:
    expected = {403: Forbidden, 404: NotFound, 409: Conflict, 410: Gone, 422: Invalid}[status]
    fake.faults.inject(status, method="GET", path=r"^/version$", count=1)
    with pytest.raises(expected) as err:
        client.version()
    assert err.value.status == status
    assert sleeps == []  # client errors are final


def test_not_found(client: KubeClient, test_namespace: str) -> None:
    assert client.get_object(CONFIGMAPS, "absent", test_namespace) is None
    with pytest.raises(NotFound) as err:
        client.get(CONFIGMAPS.object_path("absent", test_namespace))
    assert (err.value.status, err.value.reason) == (404, "NotFound")
    assert '"absent" not found' in str(err.value)  # the server's Status message
    with pytest.raises(NotFound):
        client.delete(CONFIGMAPS, "absent", test_namespace)
    client.delete_namespace(f"lbt-absent-{uuid.uuid4().hex[:6]}")  # a no-op, not an error


def test_already_exists_and_stale_write_are_conflicts(client: KubeClient, test_namespace: str) -> None:
    created = client.create(CONFIGMAPS, configmap("dup", test_namespace))
    with pytest.raises(AlreadyExists) as err:
        client.create(CONFIGMAPS, configmap("dup", test_namespace))
    assert (err.value.status, err.value.reason) == (409, "AlreadyExists")

    client.patch(CONFIGMAPS, "dup", {"data": {"k": "changed"}}, test_namespace)
    stale = dict(created, data={"k": "stale"})
    with pytest.raises(Conflict) as stale_err:
        client.replace(CONFIGMAPS, stale)
    assert not isinstance(stale_err.value, AlreadyExists)
    assert stale_err.value.status == 409


def test_invalid_object(client: KubeClient, test_namespace: str) -> None:
    with pytest.raises(Invalid) as err:
        client.create(CONFIGMAPS, configmap("Not_A_Valid_Name", test_namespace))
    assert err.value.status == 422
    assert err.value.reason == "Invalid"


def test_object_round_trip(client: KubeClient, test_namespace: str) -> None:
    created = client.create(CONFIGMAPS, configmap("rt", test_namespace))
    assert created["metadata"]["uid"]

    patched = client.patch(CONFIGMAPS, "rt", {"data": {"extra": "1"}}, test_namespace)
    assert patched["data"] == {"k": "rt", "extra": "1"}
    patched = client.patch(
        CONFIGMAPS, "rt", [{"op": "replace", "path": "/data/extra", "value": "2"}], test_namespace, patch_type="json"
    )
    assert patched["data"]["extra"] == "2"

    replaced = client.replace(CONFIGMAPS, dict(patched, data={"only": "this"}))
    assert replaced["data"] == {"only": "this"}
    fetched = client.get_object(CONFIGMAPS, "rt", test_namespace)
    assert fetched is not None and fetched["data"] == {"only": "this"}

    client.delete(CONFIGMAPS, "rt", test_namespace)
    assert client.get_object(CONFIGMAPS, "rt", test_namespace) is None


def test_namespace_is_required_for_namespaced_types(client: KubeClient) -> None:
    with pytest.raises(ValueError, match="namespaced"):
        client.create(CONFIGMAPS, {"metadata": {"name": "x"}})


def test_wrong_ca_fails_verification(credentials: ClusterCredentials, sleeps: Sleeps) -> None:
    wrong = dataclasses.replace(credentials, ca_data=other_ca(), insecure_skip_tls_verify=False)
    if not wrong.server.startswith("https://"):
        pytest.skip("the cluster does not use TLS")
    with KubeClient(wrong, sleep=sleeps) as kube, pytest.raises(Unreachable) as err:
        kube.version()
    assert "TLS" in str(err.value) and wrong.server in str(err.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
    assert sleeps == []  # a bad certificate stays bad


@pytest.mark.fakeonly
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_insecure_skip_tls_verify_connects_without_a_ca(fake: Any, credentials: ClusterCredentials) -> None:
    insecure = dataclasses.replace(credentials, ca_data=None, insecure_skip_tls_verify=True)
    with KubeClient(insecure) as kube:
        assert kube.version()["major"]


def test_unreachable_port_names_the_url(sleeps: Sleeps) -> None:
    port = free_port()
    server = f"https://127.0.0.1:{port}"
    credentials = ClusterCredentials(server=server, token_provider=StaticToken("t"), name="nowhere")
    with KubeClient(credentials, max_retries=3, sleep=sleeps) as kube, pytest.raises(Unreachable) as err:
        kube.version()
    assert server in str(err.value)
    assert (err.value.method, err.value.path, err.value.status) == ("GET", "/version", None)
    assert len(sleeps) == 3  # nothing was sent, so retrying was safe


def test_one_client_serves_many_threads(client: KubeClient, test_namespace: str) -> None:
    names = [f"t-{i:03d}" for i in range(64)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: client.create(CONFIGMAPS, configmap(n, test_namespace)), names))
        fetched = list(pool.map(lambda n: client.get_object(CONFIGMAPS, n, test_namespace), names))
    assert [obj["metadata"]["name"] for obj in fetched if obj] == names


def test_a_write_request_goes_out_in_one_write(
    client: KubeClient, test_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Head and body leave in one sendall (one TLS record), large bodies included; what arrives is intact."""
    client.version()  # the connection is open before the writes are counted
    writes = _count_writes(monkeypatch)
    big = dict(configmap("big", test_namespace), data={"k": "x" * 200_000})
    client.create(CONFIGMAPS, configmap("small", test_namespace))
    client.create(CONFIGMAPS, big)
    client.patch(CONFIGMAPS, "small", {"data": {"extra": "1"}}, test_namespace)
    assert len(writes) == 3
    client.get_object(CONFIGMAPS, "small", test_namespace)  # no body: one write as before
    assert len(writes) == 4
    fetched = client.get_object(CONFIGMAPS, "big", test_namespace)
    assert fetched is not None and fetched["data"] == {"k": "x" * 200_000}
    small = client.get_object(CONFIGMAPS, "small", test_namespace)
    assert small is not None and small["data"] == {"k": "small", "extra": "1"}


def _count_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the sendall calls this thread makes from now on, over TLS or plain TCP."""
    writes: list[int] = []
    me = threading.get_ident()
    for cls in (ssl.SSLSocket, socket.socket):
        original = cls.sendall

        def counted(sock: Any, data: Any, *args: Any, _original: Any = original) -> Any:
            if threading.get_ident() == me:
                writes.append(len(data))
            return _original(sock, data, *args)

        monkeypatch.setattr(cls, "sendall", counted)
    return writes


def other_ca() -> bytes:
    """A CA that signed nothing the server presents."""
    return self_signed_pem("somebody-else", ca=True)
