"""KubeClient over real HTTPS against the Kubernetes API test server (or a real cluster, where no fault is needed)."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.resources import Resource
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
    WaitTimeout,
    load_kubeconfig,
)
from tests.support.certs import self_signed_pem
from tests.support.ports import free_port

CONFIGMAPS = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"create", "get", "list", "delete"}))
SECRETS = Resource("", "v1", "Secret", "secrets", True, frozenset({"create", "get", "list", "delete"}))
CRDS = Resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False)
PAGED_COUNT = 1200
PAGE_LIMIT = 100


class Sleeps(list[float]):
    """A recording stand-in for time.sleep, so retry tests neither wait nor guess."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def credentials(kubeconfig_path: Path) -> ClusterCredentials:
    return load_kubeconfig(kubeconfig_path.read_text())


@pytest.fixture
def client(credentials: ClusterCredentials, sleeps: Sleeps) -> Iterator[KubeClient]:
    """A client whose backoff sleeps are recorded instead of slept."""
    with KubeClient(credentials, sleep=sleeps) as kube:
        yield kube


@pytest.fixture
def fake(fake_kube: Any) -> Iterator[Any]:
    """The test server, with faults and forbidden types cleared afterwards too, so nothing leaks into the next test."""
    yield fake_kube
    fake_kube.faults.clear()
    fake_kube.allow_all()


def configmap(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"k": name},
    }


@pytest.fixture(scope="module")
def paged_namespace(kubeconfig_path: Path) -> Iterator[str]:
    """A namespace holding PAGED_COUNT labelled ConfigMaps, created by 16 threads sharing one client."""
    name = f"lbt-pages-{uuid.uuid4().hex[:6]}"
    with KubeClient.from_kubeconfig(kubeconfig_path.read_text()) as kube:
        kube.create_namespace(name)
        try:
            with ThreadPoolExecutor(16) as pool:
                list(
                    pool.map(
                        lambda i: kube.create(CONFIGMAPS, configmap(f"cm-{i:04d}", name, paged="yes")),
                        range(PAGED_COUNT),
                    )
                )
            yield name
        finally:
            kube.delete_namespace(name)


def paged_path(namespace: str) -> str:
    return CONFIGMAPS.collection_path(namespace)


# -- cluster and discovery --


def test_version(client: KubeClient) -> None:
    version = client.version()
    assert version["major"] and "gitVersion" in version


def test_discovery_covers_core_and_apps(client: KubeClient) -> None:
    resources = client.discover()

    by_name = {(r.group, r.plural): r for r in resources}
    configmaps = by_name[("", "configmaps")]
    assert configmaps.kind == "ConfigMap" and configmaps.namespaced and configmaps.listable
    assert by_name[("", "namespaces")].namespaced is False
    deployments = by_name[("apps", "deployments")]
    assert (deployments.version, deployments.kind) == ("v1", "Deployment")
    assert client.discovery_errors == []
    # Exactly the top-level types of apps/v1: deployments/scale, deployments/status and the like are left out.
    served = [entry["name"] for entry in client.get("/apis/apps/v1")["resources"]]
    assert any("/" in name for name in served)
    assert sorted(r.plural for r in resources if r.group == "apps") == sorted(n for n in served if "/" not in n)


def test_discovery_uses_each_groups_preferred_version_only(client: KubeClient) -> None:
    resources = client.discover()
    versions: dict[str, set[str]] = {}
    for resource in resources:
        versions.setdefault(resource.group, set()).add(resource.version)
    assert all(len(v) == 1 for v in versions.values()), versions
    assert len(resources) == len({(r.group, r.plural) for r in resources})


def test_crd_registered_at_runtime_is_discovered(kube_client: KubeClient) -> None:
    client = kube_client  # real sleeps: this test waits on the server
    group = f"lbt{uuid.uuid4().hex[:6]}.example.com"
    name = f"widgets.{group}"
    client.create(CRDS, crd(group))
    try:
        client.wait_for_crd_established(name, timeout=30)

        def discovered() -> bool:
            return any(r.group == group for r in client.discover())

        client.wait_for(discovered, timeout=30, interval=0.5, what="CRD in discovery")
        widgets = next(r for r in client.discover() if r.group == group)
        assert (widgets.version, widgets.kind, widgets.plural, widgets.namespaced) == ("v1", "Widget", "widgets", True)
        assert "list" in widgets.verbs
    finally:
        client.delete(CRDS, name)


def test_waiting_for_a_crd_that_never_comes(kube_client: KubeClient) -> None:
    with pytest.raises(WaitTimeout, match="CustomResourceDefinition nothings.example.com Established"):
        kube_client.wait_for_crd_established("nothings.example.com", timeout=0.5)


def test_wait_for_polls_until_the_deadline(client: KubeClient, sleeps: Sleeps) -> None:
    now = [0.0]

    def never() -> bool:
        now[0] += 1
        return False

    with pytest.raises(WaitTimeout, match="widget ready not reached within 3s"):
        client.wait_for(never, timeout=3, interval=0.5, what="widget ready", clock=lambda: now[0])
    assert sleeps == [0.5, 0.5]


@pytest.mark.fakeonly
def test_unavailable_group_is_skipped_and_recorded(fake: Any, client: KubeClient, sleeps: Sleeps) -> None:
    fake.faults.inject(503, method="GET", path=r"^/apis/apps/v1$", count=10)

    resources = client.discover()

    assert not any(r.group == "apps" for r in resources)
    assert any(r.plural == "configmaps" for r in resources)
    assert [group for group, _ in client.discovery_errors] == ["apps/v1"]
    assert "503" in client.discovery_errors[0][1]
    assert len(sleeps) == 1  # one quick second try, not a full backoff per broken group


# -- paging --


def test_paging_follows_continue_tokens(client: KubeClient, paged_namespace: str) -> None:
    pages = list(client.list_pages(paged_path(paged_namespace), limit=PAGE_LIMIT, label_selector="paged=yes"))

    names = [item["metadata"]["name"] for page in pages for item in page.items]
    assert len(names) == PAGED_COUNT and len(set(names)) == PAGED_COUNT
    assert len(pages) >= PAGED_COUNT // PAGE_LIMIT
    assert all(len(page.items) <= PAGE_LIMIT for page in pages)
    assert not any(page.restarted for page in pages)
    assert all(page.resource_version for page in pages)
    # List items come without their type; pages fill it in so every item can be stored on its own.
    assert {(i["apiVersion"], i["kind"]) for p in pages for i in p.items} == {("v1", "ConfigMap")}


@pytest.mark.fakeonly
def test_paging_is_exact_on_the_test_server(fake: Any, client: KubeClient, paged_namespace: str) -> None:
    pages = list(client.list_pages(paged_path(paged_namespace), limit=PAGE_LIMIT))
    assert [len(page.items) for page in pages] == [PAGE_LIMIT] * (PAGED_COUNT // PAGE_LIMIT)


def test_field_selector_narrows_the_list(client: KubeClient, paged_namespace: str) -> None:
    pages = list(client.list_pages(paged_path(paged_namespace), field_selector="metadata.name=cm-0042"))
    assert [item["metadata"]["name"] for page in pages for item in page.items] == ["cm-0042"]


@pytest.mark.fakeonly
def test_expired_continue_token_restarts_the_list(fake: Any, client: KubeClient, paged_namespace: str) -> None:
    collected: list[str] = []
    restarted_at: list[int] = []
    for index, page in enumerate(client.list_pages(paged_path(paged_namespace), limit=PAGE_LIMIT)):
        if page.restarted:
            restarted_at.append(index)
            collected.clear()
        collected.extend(item["metadata"]["name"] for item in page.items)
        if index == 2:
            fake.expire_continue_tokens()

    assert restarted_at == [3]
    assert collected[0] == "cm-0000"  # the restarted page is the list's first page again
    assert len(collected) == PAGED_COUNT and len(set(collected)) == PAGED_COUNT


@pytest.mark.fakeonly
def test_restarts_are_bounded(fake: Any, client: KubeClient, paged_namespace: str) -> None:
    pages = client.list_pages(paged_path(paged_namespace), limit=PAGE_LIMIT)
    restarts = 0
    with pytest.raises(Gone) as err:
        for page in pages:
            restarts += page.restarted
            fake.expire_continue_tokens()  # every token expires before it is used: the list can never finish
    assert restarts == 3
    assert err.value.status == 410


@pytest.mark.fakeonly
@pytest.mark.parametrize("status", [500, 503, 429])
def test_error_mid_list_is_retried_in_place(
    fake: Any, client: KubeClient, sleeps: Sleeps, paged_namespace: str, status: int
) -> None:
    path = paged_path(paged_namespace)
    fake.faults.inject(status, method="GET", path=f"^{path}$", nth=3, count=1)

    pages = list(client.list_pages(path, limit=PAGE_LIMIT))

    assert sum(len(page.items) for page in pages) == PAGED_COUNT
    assert not any(page.restarted for page in pages)
    assert len(sleeps) == 1


# -- retries --


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


# -- error mapping --


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


# -- transport --


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


# -- helpers --


def crd(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


def other_ca() -> bytes:
    """A CA that signed nothing the server presents."""
    return self_signed_pem("somebody-else", ca=True)
