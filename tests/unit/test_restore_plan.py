from __future__ import annotations

import copy
from typing import Any

import pytest

from chalicelib.core.resources import Resource
from chalicelib.core.restore_options import RestoreOptions
from chalicelib.core.restore_order import level_of
from chalicelib.core.restore_plan import (
    Reason,
    build_plan,
    diff_paths,
    object_key,
    plan_object,
    prepare_update,
)
from tests.support.objects import obj
from tests.support.resources import CM, CRD, DEPLOY, EVENTS, NS, PV, PVC, RS, SVC, VERBS, WIDGET


def deployment(replicas: int = 2, image: str = "nginx:1.27", **meta: Any) -> dict[str, Any]:
    return obj(
        "Deployment",
        "web",
        apiVersion="apps/v1",
        metadata=meta,
        spec={
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    )


def live(desired: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns for ``desired``: server metadata, status and defaults added."""
    out = copy.deepcopy(desired)
    out["metadata"].update(uid="u-1", resourceVersion="42", creationTimestamp="2026-01-01T00:00:00Z", generation=3)
    out["status"] = {"observedGeneration": 3}
    if out["kind"] == "Deployment":
        out["spec"]["strategy"] = {"type": "RollingUpdate"}
        out["spec"]["revisionHistoryLimit"] = 10
        container = out["spec"]["template"]["spec"]["containers"][0]
        container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
        out["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
        out["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "3"
    return out


# -- one object ----------------------------------------------------------------------------------------------------


def test_new_object_is_created_with_the_transformed_body() -> None:
    options = RestoreOptions(namespace_mapping={"shop": "dr"}, restore_id="r-1")
    item = plan_object(obj("ConfigMap", "c", data={"k": "v"}), CM, options, None)
    assert (item.action, item.reason, item.namespace, item.name, item.source_namespace) == (
        "create",
        Reason.NEW,
        "dr",
        "c",
        "shop",
    )
    assert item.desired is not None and item.desired["metadata"]["namespace"] == "dr"
    assert item.desired["metadata"]["labels"]["lifeboat.io/restore-id"] == "r-1"
    assert item.key == "configmaps/dr/c"


def test_existing_object_is_skipped_under_skip_policy() -> None:
    item = plan_object(deployment(), DEPLOY, RestoreOptions(), live(deployment(replicas=5)))
    assert (item.action, item.reason) == ("skip", Reason.EXISTS)
    assert item.desired is None


def test_update_reports_changed_paths_and_ignores_server_defaults() -> None:
    options = RestoreOptions(existing_policy="update", restore_id="r-2")
    same = plan_object(deployment(), DEPLOY, options, live(deployment()))
    assert (same.action, same.reason, same.diff) == ("skip", Reason.UNCHANGED, ())
    changed = plan_object(deployment(), DEPLOY, options, live(deployment(replicas=5, image="nginx:1.25")))
    assert changed.action == "update" and changed.reason == Reason.CHANGED
    assert changed.diff == ("spec.replicas", "spec.template")
    assert changed.desired is not None


def test_labels_and_data_are_compared_whole() -> None:
    options = RestoreOptions(existing_policy="update")
    backed_up = obj("ConfigMap", "c", metadata={"labels": {"app": "web"}}, data={"a": "1"})
    on_cluster = obj("ConfigMap", "c", metadata={"labels": {"app": "web", "extra": "x"}}, data={"a": "1", "b": "2"})
    item = plan_object(backed_up, CM, options, on_cluster)
    assert item.diff == ("data", "metadata.labels")
    # our own bookkeeping label from an earlier restore is not a change
    earlier = obj(
        "ConfigMap", "c", metadata={"labels": {"app": "web", "lifeboat.io/restore-id": "old"}}, data={"a": "1"}
    )
    assert plan_object(backed_up, CM, options, earlier).reason == Reason.UNCHANGED


def test_diff_detects_removed_list_items_and_type_changes() -> None:
    desired = {"kind": "X", "apiVersion": "v1", "metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}}
    two_ports = copy.deepcopy(desired)
    two_ports["spec"]["ports"].append({"port": 443})
    assert diff_paths(desired, two_ports) == ["spec.ports"]
    scalar = copy.deepcopy(desired)
    scalar["spec"]["ports"] = "80"
    assert diff_paths(desired, scalar) == ["spec.ports"]
    assert diff_paths(desired, {**desired, "spec": None}) == ["spec"]


@pytest.mark.parametrize(
    ("options", "resource", "item_obj", "reason"),
    [
        (RestoreOptions(include_namespaces=("billing",)), CM, obj("ConfigMap", "c"), Reason.FILTERED),
        (RestoreOptions(label_selector="app=db"), CM, obj("ConfigMap", "c"), Reason.FILTERED),
        (RestoreOptions(exclude_resources=("configmaps",)), CM, obj("ConfigMap", "c"), Reason.EXCLUDED_TYPE),
        (RestoreOptions(), EVENTS, obj("Event", "e"), Reason.EXCLUDED_TYPE),
        (
            RestoreOptions(),
            RS,
            obj("ReplicaSet", "web-1", metadata={"ownerReferences": [{"kind": "Deployment", "name": "web"}]}),
            Reason.CONTROLLER_OWNED,
        ),
        (RestoreOptions(), NS, obj("Namespace", "kube-system", None), Reason.SYSTEM_OBJECT),
        (
            RestoreOptions(include_namespaces=("shop",)),
            PV,
            obj("PersistentVolume", "pv", None, spec={"claimRef": {"namespace": "other", "name": "d"}}),
            Reason.FILTERED,
        ),
    ],
)
def test_skips_carry_their_reason(options: RestoreOptions, resource: Resource, item_obj: Any, reason: Reason) -> None:
    item = plan_object(item_obj, resource, options, None)
    assert (item.action, item.reason) == ("skip", reason)
    assert item.detail
    assert item.desired is None


def test_namespace_objects_are_not_label_filtered() -> None:
    item = plan_object(obj("Namespace", "shop", None), NS, RestoreOptions(label_selector="app=web"), None)
    assert item.action == "create"


def test_kind_and_api_version_come_from_the_resource_when_missing() -> None:
    bare = {"metadata": {"name": "c", "namespace": "shop"}, "data": {}}
    item = plan_object(bare, CM, RestoreOptions(), None)
    assert item.desired is not None
    assert (item.desired["kind"], item.desired["apiVersion"]) == ("ConfigMap", "v1")


# -- replace bodies ------------------------------------------------------------------------------------------------


def test_prepare_update_keeps_what_the_cluster_allocated() -> None:
    desired = obj("Service", "web", spec={"ports": [{"port": 80, "protocol": "TCP"}], "type": "NodePort"})
    existing = obj(
        "Service",
        "web",
        metadata={"resourceVersion": "77"},
        spec={
            "type": "NodePort",
            "clusterIP": "10.0.0.9",
            "clusterIPs": ["10.0.0.9"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31234}],
        },
    )
    body = prepare_update(desired, existing, SVC)
    assert body["metadata"]["resourceVersion"] == "77"
    assert body["spec"]["clusterIP"] == "10.0.0.9"
    assert body["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "nodePort": 31234}]
    assert "resourceVersion" not in desired["metadata"] and "clusterIP" not in desired["spec"]  # input untouched

    claim = obj("PersistentVolumeClaim", "d", spec={"resources": {"requests": {"storage": "2Gi"}}})
    bound = obj("PersistentVolumeClaim", "d", metadata={"resourceVersion": "5"}, spec={"volumeName": "pv-9"})
    assert prepare_update(claim, bound, PVC)["spec"]["volumeName"] == "pv-9"


# -- the whole plan ------------------------------------------------------------------------------------------------


def backup_objects() -> list[tuple[Resource, dict[str, Any]]]:
    return [
        (DEPLOY, deployment()),
        (CM, obj("ConfigMap", "c", data={"k": "v"})),
        (NS, obj("Namespace", "shop", None)),
        (NS, obj("Namespace", "default", None)),
        (CM, obj("ConfigMap", "kube-root-ca.crt")),
        (WIDGET, obj("Widget", "w", apiVersion="example.com/v1")),
        (CRD, obj("CustomResourceDefinition", "widgets.example.com", None, apiVersion="apiextensions.k8s.io/v1")),
        (RS, obj("ReplicaSet", "web-1", metadata={"ownerReferences": [{"kind": "Deployment", "name": "web"}]})),
    ]


def test_plan_groups_items_into_ordered_levels() -> None:
    plan = build_plan(backup_objects(), RestoreOptions(), backup_id="b-1")
    kinds = [[i.resource.kind for i in level] for level in plan.levels]
    assert kinds[0] == ["CustomResourceDefinition"]
    assert kinds[1] == ["Namespace", "Namespace"]
    assert [level[0].level for level in plan.levels] == sorted({level_of(r) for r, _ in backup_objects()})
    assert plan.counts() == {"create": 5, "update": 0, "skip": 3}
    assert plan.skipped_by_reason() == {"system-object": 1, "controller-managed": 1, "controller-owned": 1}


def test_plan_looks_up_only_what_it_would_write() -> None:
    looked_up: list[tuple[str, str | None, str]] = []
    on_cluster = {("configmaps", "shop", "c"): live(obj("ConfigMap", "c", data={"k": "v"}))}

    def existing(resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        looked_up.append((resource.group_resource, namespace, name))
        return on_cluster.get((resource.group_resource, namespace, name))

    plan = build_plan(backup_objects(), RestoreOptions(), backup_id="b-1", existing=existing)
    assert ("replicasets.apps", "shop", "web-1") not in looked_up
    assert ("namespaces", None, "default") not in looked_up
    assert ("configmaps", "shop", "c") in looked_up
    by_key = {i.key: i for i in plan.items}
    assert by_key["configmaps/shop/c"].reason == Reason.EXISTS
    assert by_key["deployments.apps/shop/web"].action == "create"


def test_namespace_missing_from_the_backup_is_implied() -> None:
    objects = [(CM, obj("ConfigMap", "c", "orphan")), (CM, obj("ConfigMap", "d", "default"))]
    plan = build_plan(objects, RestoreOptions(namespace_mapping={"orphan": "adopted"}, restore_id="r-3"))
    namespaces = [i for i in plan.items if i.resource.group_resource == "namespaces"]
    assert [(i.name, i.action, i.reason) for i in namespaces] == [("adopted", "create", Reason.IMPLIED)]
    assert namespaces[0].desired is not None
    assert namespaces[0].desired["metadata"]["labels"]["lifeboat.io/restore-id"] == "r-3"
    assert plan.levels[0] == tuple(namespaces)


def test_claim_gets_snapshot_source_only_when_the_snapshot_is_selected() -> None:
    vs = Resource("snapshot.storage.k8s.io", "v1", "VolumeSnapshot", "volumesnapshots", True, VERBS)
    snap = obj(
        "VolumeSnapshot",
        "s",
        apiVersion="snapshot.storage.k8s.io/v1",
        spec={"source": {"persistentVolumeClaimName": "data"}},
    )
    vsc = Resource("snapshot.storage.k8s.io", "v1", "VolumeSnapshotContent", "volumesnapshotcontents", False, VERBS)
    content = obj(
        "VolumeSnapshotContent",
        "c",
        None,
        apiVersion="snapshot.storage.k8s.io/v1",
        spec={"source": {"snapshotHandle": "snap-1"}, "volumeSnapshotRef": {"namespace": "shop", "name": "s"}},
    )
    claim = obj("PersistentVolumeClaim", "data", spec={"volumeName": "pv-1"})
    pv = obj("PersistentVolume", "pv-1", None, spec={"claimRef": {"namespace": "shop", "name": "data"}})
    objects = [(vs, snap), (vsc, content), (PVC, claim), (PV, pv)]
    plan = {i.key: i for i in build_plan(objects, RestoreOptions()).items}
    assert plan["persistentvolumeclaims/shop/data"].desired["spec"]["dataSource"]["name"] == "s"  # type: ignore[index]
    assert plan["persistentvolumes/pv-1"].reason == Reason.RESTORED_FROM_SNAPSHOT
    without = {i.key: i for i in build_plan(objects, RestoreOptions(exclude_resources=("volumesnapshots",))).items}
    assert "dataSource" not in without["persistentvolumeclaims/shop/data"].desired["spec"]  # type: ignore[index]
    assert without["persistentvolumes/pv-1"].action == "create"


def test_plan_to_dict_never_holds_object_bodies() -> None:
    secret = Resource("", "v1", "Secret", "secrets", True, VERBS)
    plan = build_plan([(secret, obj("Secret", "db", data={"password": "c2VjcmV0"}))], RestoreOptions())
    text = repr(plan.to_dict()) + repr(plan.items)
    assert "c2VjcmV0" not in text
    assert plan.to_dict()["levels"][0][0] == {
        "key": "namespaces/shop",
        "apiVersion": "v1",
        "kind": "Namespace",
        "resource": "namespaces",
        "namespace": None,
        "name": "shop",
        "action": "create",
        "reason": "implied",
        "detail": "the backup holds objects for this namespace but not the namespace itself",
    }


def test_object_key() -> None:
    assert object_key(DEPLOY, "shop", "web") == "deployments.apps/shop/web"
    assert object_key(NS, None, "shop") == "namespaces/shop"


def test_owned_objects_run_after_their_restored_owners_and_foreign_owners_are_named() -> None:
    def ref(kind: str, name: str, uid: str) -> dict[str, Any]:
        return {"apiVersion": "example.com/v1", "kind": kind, "name": name, "uid": uid}

    widget = obj("Widget", "w", apiVersion="example.com/v1", metadata={"uid": "u-w"})
    child = obj("ConfigMap", "child", metadata={"uid": "u-c", "ownerReferences": [ref("Widget", "w", "u-w")]})
    grandchild = obj("ConfigMap", "gc", metadata={"uid": "u-g", "ownerReferences": [ref("ConfigMap", "child", "u-c")]})
    stray = obj("ConfigMap", "stray", metadata={"uid": "u-s", "ownerReferences": [ref("Widget", "gone", "u-x")]})
    plan = build_plan([(WIDGET, widget), (CM, child), (CM, grandchild), (CM, stray)], RestoreOptions())
    items = {i.name: i for i in plan.items}
    assert items["w"].order < items["child"].order < items["gc"].order
    assert items["stray"].order == (level_of(CM), 0)
    assert items["child"].desired["metadata"]["ownerReferences"][0]["uid"] == "u-w"
    assert "ownerReferences" not in items["stray"].desired["metadata"]
    assert items["stray"].detail == "ownerReferences dropped, owners not restored: Widget/gone"
    assert [i.name for level in plan.levels for i in level].index("gc") == len(plan.items) - 1
