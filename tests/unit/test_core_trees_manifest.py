from __future__ import annotations

import pytest

from chalicelib.core.errors import FormatError
from chalicelib.core.manifest import Manifest
from chalicelib.core.references import ReferenceCollector, cluster_listing_order
from chalicelib.core.resources import Resource
from chalicelib.core.trees import TreeEntry, decode_root, decode_tree, encode_root, encode_tree


def _entry(name, group="", resource="configmaps"):
    return TreeEntry(group, resource, name, "v1", "ConfigMap", "ab" * 32, 10)


def test_tree_is_canonical_whatever_the_input_order():
    a = [_entry("b"), _entry("a"), _entry("c", "apps", "deployments")]
    tid1, data1 = encode_tree(a)
    tid2, data2 = encode_tree(list(reversed(a)))
    assert (tid1, data1) == (tid2, data2)
    assert [e.name for e in decode_tree(data1)] == ["a", "b", "c"]


def test_root_round_trip_and_type_checks():
    rid, data = encode_root({"shop": "1" * 64, "": "2" * 64})
    assert decode_root(data) == {"": "2" * 64, "shop": "1" * 64}
    with pytest.raises(FormatError):
        decode_tree(data)
    with pytest.raises(FormatError):
        decode_root(encode_tree([_entry("a")])[1])


def _manifest(**kw):
    base = dict(backup_id="b1", cluster="c", policy=None, parent=None, started_at="s", finished_at="f",
                kubernetes_version="v1.31.0", scope={}, root_tree="r" * 64, counts={"objects": 1}, kinds={},
                index_files=[])
    base.update(kw)
    return Manifest(**base)


def test_manifest_round_trip_and_version_refusal():
    m = _manifest()
    assert Manifest.from_json(m.to_json()) == m
    bad = m.to_json().replace(b'"format_version": 1', b'"format_version": 2')
    with pytest.raises(FormatError, match="version 2"):
        Manifest.from_json(bad)
    with pytest.raises(FormatError):
        Manifest.from_json(b"{not json")


def _res(group, plural, kind, namespaced):
    return Resource(group, "v1", kind, plural, namespaced, frozenset({"list"}))


PVC = _res("", "persistentvolumeclaims", "PersistentVolumeClaim", True)
PV = _res("", "persistentvolumes", "PersistentVolume", False)
SC = _res("storage.k8s.io", "storageclasses", "StorageClass", False)
RB = _res("rbac.authorization.k8s.io", "rolebindings", "RoleBinding", True)
CR = _res("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", False)
CRB = _res("rbac.authorization.k8s.io", "clusterrolebindings", "ClusterRoleBinding", False)
CRD = _res("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", False)
WIDGET = _res("shop.example.com", "widgets", "Widget", True)


def test_auto_mode_keeps_only_referenced_cluster_objects():
    refs = ReferenceCollector(frozenset({"shop"}))
    refs.observe(PVC, {"spec": {"volumeName": "pv-1", "storageClassName": "fast"}})
    refs.observe(RB, {"roleRef": {"kind": "ClusterRole", "name": "view"}})
    refs.observe(WIDGET, {"spec": {}})
    assert refs.wants(PV, {"metadata": {"name": "pv-1"}, "spec": {"storageClassName": "fast"}})
    assert not refs.wants(PV, {"metadata": {"name": "pv-other"}, "spec": {"claimRef": {"namespace": "else"}}})
    assert refs.wants(SC, {"metadata": {"name": "fast"}})
    assert not refs.wants(SC, {"metadata": {"name": "slow"}})
    assert refs.wants(CR, {"metadata": {"name": "view"}})
    assert not refs.wants(CR, {"metadata": {"name": "admin"}})
    assert refs.wants(CRD, {"metadata": {"name": "widgets.shop.example.com"}})
    assert not refs.wants(CRD, {"metadata": {"name": "gadgets.other.io"}})


def test_cluster_role_binding_of_a_selected_service_account_pulls_its_role():
    refs = ReferenceCollector(frozenset({"shop"}))
    crb = {"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
           "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "shop"}]}
    assert refs.wants(CRB, crb)
    assert refs.wants(CR, {"metadata": {"name": "reader"}})
    order = [r.plural for r in cluster_listing_order([CR, SC, PV, CRB])]
    assert order.index("clusterrolebindings") < order.index("clusterroles")
    assert order.index("persistentvolumes") < order.index("storageclasses")


def test_tree_blob_ids_match_the_decoded_entries():
    from chalicelib.core.trees import tree_blob_ids

    entries = [TreeEntry("", "configmaps", f"c{i}", "v1", "ConfigMap", f"{i:064x}", 1) for i in range(5)]
    _, data = encode_tree(entries)
    assert tree_blob_ids(data) == [e.blob for e in decode_tree(data)]
    with pytest.raises(FormatError):
        tree_blob_ids(encode_root({"": "1" * 64})[1])
