from __future__ import annotations

import copy
from typing import Any

import pytest

from chalicelib.core.restore_actions import (
    ACTIONS,
    SKIP_RULES,
    apply_actions,
    skip_reason,
)
from chalicelib.core.restore_context import RestoreContext
from chalicelib.core.restore_options import RestoreOptions
from chalicelib.core.restore_plan import Reason
from tests.support.objects import obj
from tests.support.resources import (
    CM,
    CR,
    CRB,
    DEPLOY,
    EP,
    JOB,
    NS,
    POD,
    RB,
    RS,
    SA,
    SECRET,
    SLICE,
    SVC,
)


def ctx(**options: Any) -> RestoreContext:
    return RestoreContext(options=RestoreOptions(**options), backup_id="b-1")


# -- skips ---------------------------------------------------------------------------------------------------------


def test_controller_owned_objects_are_skipped_but_plain_references_are_not() -> None:
    owned = obj("ConfigMap", "c", metadata={"ownerReferences": [{"kind": "Widget", "name": "w", "controller": True}]})
    referenced = obj("ConfigMap", "c", metadata={"ownerReferences": [{"kind": "Widget", "name": "w"}]})
    skip = skip_reason(owned, CM, ctx())
    assert skip is not None and skip.reason == "controller-owned" and "Widget/w" in skip.detail
    assert skip_reason(referenced, CM, ctx()) is None


def test_pods_with_any_owner_and_replicasets_of_deployments_are_skipped() -> None:
    pod = obj("Pod", "p", metadata={"ownerReferences": [{"kind": "Node", "name": "n1"}]})
    rs = obj("ReplicaSet", "web-1", metadata={"ownerReferences": [{"kind": "Deployment", "name": "web"}]})
    bare_pod = obj("Pod", "p")
    assert skip_reason(pod, POD, ctx()).reason == "controller-owned"  # type: ignore[union-attr]
    assert skip_reason(rs, RS, ctx()).reason == "controller-owned"  # type: ignore[union-attr]
    assert skip_reason(bare_pod, POD, ctx()) is None
    assert skip_reason(obj("ReplicaSet", "standalone"), RS, ctx()) is None


def test_endpoints_are_skipped_unless_their_service_has_no_selector() -> None:
    with_selector = obj("Service", "web", spec={"selector": {"app": "web"}})
    manual = obj("Service", "db", spec={"ports": [{"port": 5432}]})
    context = RestoreContext.from_objects([(SVC, with_selector), (SVC, manual)], RestoreOptions())
    assert skip_reason(obj("Endpoints", "web"), EP, context).reason == "controller-managed"  # type: ignore[union-attr]
    assert skip_reason(obj("Endpoints", "db"), EP, context) is None


def test_endpointslices_written_by_controllers_are_skipped() -> None:
    managed = obj(
        "EndpointSlice",
        "web-abc",
        metadata={"labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
    )
    custom = obj("EndpointSlice", "ext", metadata={"labels": {"endpointslice.kubernetes.io/managed-by": "me"}})
    assert skip_reason(managed, SLICE, ctx()).reason == "controller-managed"  # type: ignore[union-attr]
    assert skip_reason(custom, SLICE, ctx()) is None


def test_generated_token_secrets_and_root_ca_are_skipped() -> None:
    generated = obj(
        "Secret",
        "default-token-x7k2p",
        type="kubernetes.io/service-account-token",
        metadata={"annotations": {"kubernetes.io/service-account.name": "default"}},
    )
    opaque = obj("Secret", "default-token-x7k2p", type="Opaque")
    assert skip_reason(generated, SECRET, ctx()).reason == "controller-managed"  # type: ignore[union-attr]
    assert skip_reason(opaque, SECRET, ctx()) is None
    assert skip_reason(obj("ConfigMap", "kube-root-ca.crt"), CM, ctx()).reason == "controller-managed"  # type: ignore[union-attr]
    assert skip_reason(obj("ConfigMap", "app-config"), CM, ctx()) is None


@pytest.mark.parametrize("name", ["kube-system", "kube-public", "kube-node-lease", "default"])
def test_system_namespaces_are_skipped_as_objects(name: str) -> None:
    assert skip_reason(obj("Namespace", name, None), NS, ctx()).reason == "system-object"  # type: ignore[union-attr]


def test_namespace_mapped_out_of_default_is_restored_and_into_default_is_not() -> None:
    assert skip_reason(obj("Namespace", "default", None), NS, ctx(namespace_mapping={"default": "copy"})) is None
    mapped_in = skip_reason(obj("Namespace", "shop", None), NS, ctx(namespace_mapping={"shop": "default"}))
    assert mapped_in is not None and mapped_in.reason == "system-object"


def test_bootstrap_rbac_and_api_server_service_are_skipped() -> None:
    bootstrap = obj("ClusterRole", "admin", None, metadata={"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}})
    assert skip_reason(bootstrap, CR, ctx()).reason == "system-object"  # type: ignore[union-attr]
    assert skip_reason(obj("ClusterRole", "mine", None), CR, ctx()) is None
    assert skip_reason(obj("Service", "kubernetes", "default"), SVC, ctx()).reason == "system-object"  # type: ignore[union-attr]
    assert skip_reason(obj("Service", "kubernetes", "shop"), SVC, ctx()) is None


def test_every_skip_rule_reason_is_a_plan_reason() -> None:
    for rule in SKIP_RULES:
        assert Reason(rule.reason)  # raises ValueError otherwise


# -- transforms ----------------------------------------------------------------------------------------------------


def test_service_loses_cluster_ip_and_node_ports() -> None:
    svc = obj(
        "Service",
        "web",
        spec={
            "type": "NodePort",
            "clusterIP": "10.0.0.12",
            "clusterIPs": ["10.0.0.12"],
            "ports": [{"port": 80, "nodePort": 30080}],
            "healthCheckNodePort": 31000,
        },
    )
    out = apply_actions(svc, SVC, ctx())
    assert "clusterIP" not in out["spec"] and "clusterIPs" not in out["spec"]
    assert out["spec"]["ports"] == [{"port": 80}]
    assert "healthCheckNodePort" not in out["spec"]
    kept = apply_actions(svc, SVC, ctx(preserve_node_ports=True))
    assert kept["spec"]["ports"] == [{"port": 80, "nodePort": 30080}]
    assert "clusterIP" not in kept["spec"]


def test_headless_service_keeps_cluster_ip_none() -> None:
    svc = obj("Service", "db", spec={"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432}]})
    out = apply_actions(svc, SVC, ctx())
    assert out["spec"]["clusterIP"] == "None" and out["spec"]["clusterIPs"] == ["None"]


def test_namespace_mapping_rewrites_every_reference() -> None:
    context = ctx(namespace_mapping={"shop": "shop-dr"})
    cm = apply_actions(obj("ConfigMap", "c"), CM, context)
    assert cm["metadata"]["namespace"] == "shop-dr"
    ns = apply_actions(
        obj("Namespace", "shop", None, metadata={"labels": {"kubernetes.io/metadata.name": "shop"}}), NS, context
    )
    assert ns["metadata"]["name"] == "shop-dr"
    assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "shop-dr"
    subjects = [
        {"kind": "ServiceAccount", "name": "app", "namespace": "shop"},
        {"kind": "ServiceAccount", "name": "x", "namespace": "other"},
        {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
    ]
    for resource, binding in (
        (RB, obj("RoleBinding", "rb", subjects=subjects)),
        (CRB, obj("ClusterRoleBinding", "crb", None, subjects=subjects)),
    ):
        out = apply_actions(binding, resource, context)
        assert [s.get("namespace") for s in out["subjects"]] == ["shop-dr", "other", None]
    unmapped = apply_actions(obj("ConfigMap", "c", "other"), CM, context)
    assert unmapped["metadata"]["namespace"] == "other"


def test_pod_loses_node_name() -> None:
    pod = obj("Pod", "p", spec={"nodeName": "ip-10-0-0-1", "containers": [{"name": "c", "image": "nginx"}]})
    out = apply_actions(pod, POD, ctx())
    assert "nodeName" not in out["spec"] and out["spec"]["containers"] == [{"name": "c", "image": "nginx"}]


def test_server_metadata_status_and_owner_references_are_dropped() -> None:
    cm = obj(
        "ConfigMap",
        "c",
        metadata={
            "uid": "u",
            "resourceVersion": "7",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{}],
            "generateName": "c-",
            "ownerReferences": [{"kind": "Widget", "name": "w", "uid": "old"}],
            "labels": {"app": "web"},
        },
        status={"x": 1},
        data={"k": "v"},
    )
    out = apply_actions(cm, CM, ctx(restore_id="r-1"))
    assert out["metadata"] == {
        "name": "c",
        "namespace": "shop",
        "labels": {"app": "web", "lifeboat.io/restore-id": "r-1"},
        "annotations": {"lifeboat.io/backup-id": "b-1"},
    }
    assert "status" not in out and out["data"] == {"k": "v"}


def test_job_selector_generated_by_the_server_is_dropped() -> None:
    uid_labels = {"controller-uid": "u", "batch.kubernetes.io/controller-uid": "u", "job-name": "j"}
    job = obj(
        "Job",
        "j",
        apiVersion="batch/v1",
        spec={
            "selector": {"matchLabels": {"controller-uid": "u"}},
            "template": {"metadata": {"labels": uid_labels}, "spec": {}},
        },
    )
    out = apply_actions(job, JOB, ctx())
    assert "selector" not in out["spec"]
    assert out["spec"]["template"]["metadata"]["labels"] == {"job-name": "j"}
    manual = copy.deepcopy(job)
    manual["spec"]["manualSelector"] = True
    assert apply_actions(manual, JOB, ctx())["spec"]["selector"] == {"matchLabels": {"controller-uid": "u"}}


def test_hand_made_token_secret_is_reissued_and_generated_refs_dropped() -> None:
    secret = obj(
        "Secret",
        "ci-token",
        type="kubernetes.io/service-account-token",
        data={"token": "b2xk"},
        metadata={
            "annotations": {"kubernetes.io/service-account.name": "ci", "kubernetes.io/service-account.uid": "old"}
        },
    )
    assert skip_reason(secret, SECRET, ctx()) is None
    out = apply_actions(secret, SECRET, ctx())
    assert "data" not in out
    assert out["metadata"]["annotations"] == {
        "kubernetes.io/service-account.name": "ci",
        "lifeboat.io/backup-id": "b-1",
    }
    sa = obj("ServiceAccount", "ci", secrets=[{"name": "ci-token-abcde"}, {"name": "ci-token"}])
    assert apply_actions(sa, SA, ctx())["secrets"] == [{"name": "ci-token"}]


def test_apply_actions_leaves_its_input_untouched() -> None:
    svc = obj("Service", "web", spec={"clusterIP": "10.0.0.1", "ports": [{"port": 80, "nodePort": 30001}]})
    before = copy.deepcopy(svc)
    apply_actions(svc, SVC, ctx(namespace_mapping={"shop": "x"}, restore_id="r"))
    assert svc == before


def test_restore_label_is_applied_last() -> None:
    assert ACTIONS[-1].name == "label-restored"
    out = apply_actions(obj("Deployment", "web", apiVersion="apps/v1"), DEPLOY, ctx(restore_id="r-9"))
    assert out["metadata"]["labels"] == {"lifeboat.io/restore-id": "r-9"}
    no_id = apply_actions(obj("Deployment", "web", apiVersion="apps/v1"), DEPLOY, RestoreContext())
    assert "labels" not in no_id["metadata"] and "annotations" not in no_id["metadata"]


def test_service_keeps_the_node_ports_its_author_set() -> None:
    svc = obj(
        "Service",
        "web",
        spec={"type": "NodePort", "ports": [{"port": 80, "nodePort": 30480}, {"port": 443, "nodePort": 31443}]},
    )
    svc["metadata"]["annotations"] = {"lifeboat.io/user-node-ports": "80/TCP"}
    out = apply_actions(svc, SVC, ctx())
    assert out["spec"]["ports"] == [{"port": 80, "nodePort": 30480}, {"port": 443}]
    assert "lifeboat.io/user-node-ports" not in (out["metadata"].get("annotations") or {})
    kept = apply_actions(svc, SVC, ctx(preserve_node_ports=True))
    assert [p.get("nodePort") for p in kept["spec"]["ports"]] == [30480, 31443]
