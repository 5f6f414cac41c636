"""Restores keep what the user chose and let the target cluster choose the rest (#16)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest

from chalicelib.core.nodeports import LAST_APPLIED
from chalicelib.core.restore_options import RestoreOptions
from chalicelib.kube import KubeClient
from chalicelib.restore import RestoreService, RestoreState
from tests.support.builders import make_backup
from tests.support.objects import gadget_crd
from tests.support.resources import resource_of


@pytest.fixture
def namespace(kube_client: KubeClient) -> Iterator[str]:
    name = f"lbf-{uuid.uuid4().hex[:8]}"
    kube_client.create_namespace(name)
    yield name
    # Node ports are cluster-wide: free the Service's before the namespace goes, whenever that completes.
    services = resource_of({"apiVersion": "v1", "kind": "Service"})
    if kube_client.get_object(services, "web", name) is not None:
        kube_client.delete(services, "web", name)
    kube_client.delete_namespace(name)


def _service(namespace: str) -> dict:
    # As `kubectl apply` leaves it: the port 80 node port is the user's, the port 443 one is left to the server.
    applied = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "nodePort": 30480}, {"name": "https", "port": 443}],
        },
    }
    out = orjson.loads(orjson.dumps(applied))
    out["metadata"]["annotations"] = {LAST_APPLIED: orjson.dumps(applied).decode()}
    return out


def _node_ports(svc: dict) -> dict[int, int]:
    return {p["port"]: p["nodePort"] for p in svc["spec"]["ports"]}


def test_user_set_node_port_survives_and_allocated_one_is_reallocated(kube_client: KubeClient, namespace: str) -> None:
    svc = _service(namespace)
    resource = resource_of(svc)
    created = kube_client.create(resource, svc, namespace)
    before = _node_ports(created)
    assert before[80] == 30480 and 30000 <= before[443] <= 32767
    backup = make_backup([created])
    kube_client.delete(resource, "web", namespace)

    result = RestoreService(backup.reader(), kube_client).run(backup.manifest, RestoreOptions(restore_id="r-np"))
    assert result.state == RestoreState.COMPLETED, result.failures
    restored = kube_client.get_object(resource, "web", namespace)
    assert restored is not None
    after = _node_ports(restored)
    assert after[80] == 30480
    assert after[443] != before[443] and 30000 <= after[443] <= 32767
    assert "lifeboat.io/user-node-ports" not in (restored["metadata"].get("annotations") or {})


def test_preserve_node_ports_keeps_allocated_ones(kube_client: KubeClient, namespace: str) -> None:
    svc = _service(namespace)
    resource = resource_of(svc)
    created = kube_client.create(resource, svc, namespace)
    backup = make_backup([created])
    kube_client.delete(resource, "web", namespace)

    options = RestoreOptions(restore_id="r-np-all", preserve_node_ports=True)
    result = RestoreService(backup.reader(), kube_client).run(backup.manifest, options)
    assert result.state == RestoreState.COMPLETED, result.failures
    restored = kube_client.get_object(resource, "web", namespace)
    assert restored is not None and _node_ports(restored) == _node_ports(created)


def test_object_owned_by_a_restored_custom_resource_is_linked_to_its_new_uid(kube_client: KubeClient) -> None:
    name = f"lbo-{uuid.uuid4().hex[:8]}"
    group = f"g{uuid.uuid4().hex[:8]}.lifeboat.test"
    gadget = {
        "apiVersion": f"{group}/v1",
        "kind": "Gadget",
        "metadata": {"name": "g1", "namespace": name, "uid": "src-gadget"},
        "spec": {"size": 3},
    }

    def owned(cm_name: str, owner_uid: str, owner_name: str) -> dict:
        ref = {"apiVersion": f"{group}/v1", "kind": "Gadget", "name": owner_name, "uid": owner_uid}
        meta = {"name": cm_name, "namespace": name, "uid": f"src-{cm_name}", "ownerReferences": [ref]}
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}

    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "uid": "src-ns"}}
    gadgets = resource_of(gadget, "gadgets", True)
    linked, orphan = owned("linked", "src-gadget", "g1"), owned("orphan", "src-gone", "g0")
    backup = make_backup([gadget_crd(group, uid="src-crd"), namespace, (gadgets, gadget), linked, orphan])
    service = RestoreService(backup.reader(), kube_client)
    try:
        plan = service.plan(backup.manifest, RestoreOptions())
        by_name = {item.name: item for item in plan.items}
        assert "Gadget/g0" in by_name["orphan"].detail and "dropped" in by_name["orphan"].detail
        assert by_name["linked"].detail == ""
        assert by_name["linked"].order > by_name["g1"].order  # the owner first, though ConfigMaps come early

        result = service.run(backup.manifest, RestoreOptions(restore_id="r-own"))
        assert result.state == RestoreState.COMPLETED, (result.failures, result.warnings)
        owner = kube_client.get_object(gadgets, "g1", name)
        assert owner is not None
        cms = resource_of(linked)
        restored = kube_client.get_object(cms, "linked", name)
        assert restored is not None
        refs = restored["metadata"]["ownerReferences"]
        assert [(r["kind"], r["name"], r["uid"]) for r in refs] == [("Gadget", "g1", owner["metadata"]["uid"])]
        assert owner["metadata"]["uid"] != "src-gadget"
        lone = kube_client.get_object(cms, "orphan", name)
        assert lone is not None and "ownerReferences" not in lone["metadata"]
    finally:
        kube_client.delete(resource_of(gadget_crd(group, uid="src-crd")), f"gadgets.{group}")
        kube_client.delete_namespace(name)
