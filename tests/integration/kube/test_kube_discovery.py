"""KubeClient discovery against the Kubernetes API test server: versions, preferred groups, CRDs, unavailable groups."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.kube import KubeClient, WaitTimeout
from tests.support.kube import CRDS, Sleeps


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


@contextlib.contextmanager
def _discovery(fake: Any, **how: Any) -> Iterator[None]:
    """The test server serving discovery ``how`` (``serve_discovery``), then as it does by default again."""
    fake.serve_discovery(**how)
    try:
        yield
    finally:
        fake.serve_discovery()


@pytest.mark.fakeonly
def test_unavailable_group_is_skipped_and_recorded(fake: Any, client: KubeClient, sleeps: Sleeps) -> None:
    fake.faults.inject(503, method="GET", path=r"^/apis/apps/v1$", count=10)
    with _discovery(fake, aggregated=False):  # a server before v1.26: a request per group
        resources = client.discover()

    assert not any(r.group == "apps" for r in resources)
    assert any(r.plural == "configmaps" for r in resources)
    assert [group for group, _ in client.discovery_errors] == ["apps/v1"]
    assert "503" in client.discovery_errors[0][1]
    assert len(sleeps) == 1  # one quick second try, not a full backoff per broken group


@pytest.mark.fakeonly
def test_a_stale_group_of_aggregated_discovery_is_skipped_and_recorded(fake: Any, client: KubeClient) -> None:
    with _discovery(fake, stale=["apps/v1"]):
        resources = client.discover()
    assert not any(r.group == "apps" for r in resources)
    assert any(r.plural == "configmaps" for r in resources)
    assert client.discovery_errors == [("apps/v1", "discovery is stale: its aggregated API server did not answer")]


@pytest.mark.fakeonly
def test_aggregated_discovery_finds_what_a_request_per_group_finds_in_two_requests(
    fake: Any, client: KubeClient
) -> None:
    fake.clear_requests()
    aggregated = client.discover()
    paths = [r.path for r in fake.requests]
    with _discovery(fake, aggregated=False):
        fake.clear_requests()
        plain = client.discover()
        plain_paths = [r.path for r in fake.requests]
    assert paths == ["/api", "/apis"]
    assert len(plain_paths) > 10 and plain_paths[:2] == ["/api", "/apis"]
    assert len(aggregated) == len(plain) and set(aggregated) == set(plain)
    assert client.discovery_errors == []


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
