from __future__ import annotations

import hashlib

from chalicelib.core.canonical import blob_id, canonical_blob, canonical_json
from chalicelib.core.sanitize import sanitize


def _cm(**meta):
    base = {
        "metadata": {
            "name": "app",
            "namespace": "shop",
            "uid": "1234",
            "resourceVersion": "99",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "selfLink": "/api/v1/namespaces/shop/configmaps/app",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "web"},
            "labels": {"app": "web"},
        },
        "data": {"k": "v"},
        "status": {"phase": "whatever"},
    }
    base["metadata"].update(meta)
    return base


def test_sanitize_drops_server_fields_and_fills_type():
    out = sanitize(_cm(), "ConfigMap", "v1")
    assert out["kind"] == "ConfigMap" and out["apiVersion"] == "v1"
    assert "status" not in out
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink"):
        assert key not in out["metadata"], key
    assert out["metadata"]["annotations"] == {"team": "web"}
    assert out["metadata"]["labels"] == {"app": "web"}
    assert out["data"] == {"k": "v"}


def test_sanitize_does_not_mutate_input():
    obj = _cm()
    sanitize(obj, "ConfigMap", "v1")
    assert obj["metadata"]["uid"] == "1234" and "status" in obj


def test_identical_objects_from_different_clusters_hash_identically():
    a = sanitize(_cm(uid="a", resourceVersion="1"), "ConfigMap", "v1")
    b = sanitize(_cm(uid="b", resourceVersion="777", creationTimestamp="2030-01-01T00:00:00Z"), "ConfigMap", "v1")
    assert canonical_blob(a)[0] == canonical_blob(b)[0]


def test_empty_annotations_removed_so_they_do_not_change_the_hash():
    only_server = _cm(annotations={"kubectl.kubernetes.io/last-applied-configuration": "x"})
    none = _cm(annotations={})
    assert "annotations" not in sanitize(only_server, "ConfigMap", "v1")["metadata"]
    assert canonical_json(sanitize(only_server, "ConfigMap", "v1")) == canonical_json(sanitize(none, "ConfigMap", "v1"))


def test_canonical_json_sorted_compact_and_hash_is_sha256():
    data = canonical_json({"b": 1, "a": {"d": 2, "c": [1, 2]}})
    assert data == b'{"a":{"c":[1,2],"d":2},"b":1}'
    assert blob_id(data) == hashlib.sha256(data).hexdigest()


def test_a_real_change_changes_the_hash():
    a = sanitize(_cm(), "ConfigMap", "v1")
    b = sanitize({**_cm(), "data": {"k": "v2"}}, "ConfigMap", "v1")
    assert canonical_blob(a)[0] != canonical_blob(b)[0]


def test_backup_sanitize_names_a_services_user_set_node_ports() -> None:
    from chalicelib.core.sanitize import USER_NODE_PORTS_ANNOTATION, sanitize_for_backup

    fields = {"f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {"f:nodePort": {}}}}}
    svc = {
        "metadata": {"name": "web", "managedFields": [{"manager": "kubectl", "fieldsV1": fields}]},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30480}, {"port": 81, "nodePort": 31000}]},
    }
    out = sanitize_for_backup(svc, "Service", "v1")
    assert out["metadata"]["annotations"] == {USER_NODE_PORTS_ANNOTATION: "80/TCP"}
    assert "managedFields" not in out["metadata"] and "annotations" not in svc["metadata"]
    plain = sanitize_for_backup({"metadata": {"name": "web"}, "spec": svc["spec"]}, "Service", "v1")
    assert "annotations" not in plain["metadata"]
