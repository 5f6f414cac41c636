"""ReferenceCollector per type: a type whose objects name nothing costs no call per object, and the rest still
record what they name."""

from __future__ import annotations

from chalicelib.backup.items import ItemCollector
from chalicelib.backup.listing import Page
from chalicelib.core.references import ReferenceCollector
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from tests.support.resources import CM, DEPLOY, PVC, RB, VS
from tests.unit.test_backup_reuse import MemoryWriter

WIDGETS = Resource("example.com", "v1", "Widget", "widgets", True, frozenset({"list"}))
CRDS = "customresourcedefinitions.apiextensions.k8s.io"


def _obj(name: str, ns: str = "shop", **fields: object) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": ns, "uid": f"u-{name}", "resourceVersion": "1"}, **fields}


def test_types_whose_objects_name_nothing_have_no_per_object_observer():
    refs = ReferenceCollector(frozenset({"shop"}))
    assert refs.observer(CM) is None and refs.observer(DEPLOY) is None and refs.observer(WIDGETS) is None
    assert refs.observer(PVC) is not None and refs.observer(RB) is not None and refs.observer(VS) is not None


def test_observe_is_the_per_object_observer_then_the_types_wants():
    claim = _obj("data", spec={"volumeName": "pv-1", "storageClassName": "gp3"})
    binding = _obj("b", roleRef={"kind": "ClusterRole", "name": "view"})
    snapshot = _obj("s", spec={"volumeSnapshotClassName": "csi"}, status={"boundVolumeSnapshotContentName": "c-1"})
    whole, split = ReferenceCollector(frozenset({"shop"})), ReferenceCollector(frozenset({"shop"}))
    for res, obj in ((PVC, claim), (RB, binding), (VS, snapshot), (WIDGETS, _obj("w"))):
        whole.observe(res, obj)
        observer = split.observer(res)
        if observer is not None:
            observer(obj)
        split.observed(res)
    assert (
        whole.wanted
        == split.wanted
        == {
            "persistentvolumes": {"pv-1"},
            "storageclasses.storage.k8s.io": {"gp3"},
            "clusterroles.rbac.authorization.k8s.io": {"view"},
            "volumesnapshotclasses.snapshot.storage.k8s.io": {"csi"},
            "volumesnapshotcontents.snapshot.storage.k8s.io": {"c-1"},
            CRDS: {
                "rolebindings.rbac.authorization.k8s.io",
                "volumesnapshots.snapshot.storage.k8s.io",
                "widgets.example.com",
            },
        }
    )


def test_a_page_wants_its_types_crd_only_when_it_kept_an_object():
    refs = ReferenceCollector(frozenset({"shop"}))
    collector = ItemCollector(BackupScope(), ["shop"], MemoryWriter())
    collector.handle_page(Page(WIDGETS, [_obj("w", ns="elsewhere")]), refs)
    assert refs.wanted == {}
    collector.handle_page(Page(WIDGETS, [_obj("w"), _obj("v")]), refs)
    collector.handle_page(Page(PVC, [_obj("data", spec={"volumeName": "pv-1"})]), refs)
    assert refs.wanted == {CRDS: {"widgets.example.com"}, "persistentvolumes": {"pv-1"}}


def test_only_the_cluster_types_something_names_are_worth_listing_in_auto_mode():
    from chalicelib.core.references import referring_first

    def cluster(plural: str, group: str = "") -> Resource:
        return Resource(group, "v1", plural.title(), plural, False, frozenset({"list"}))

    crb = cluster("clusterrolebindings", "rbac.authorization.k8s.io")
    roles = cluster("clusterroles", "rbac.authorization.k8s.io")
    pvs, classes = cluster("persistentvolumes"), cluster("storageclasses", "storage.k8s.io")
    priorities = cluster("priorityclasses", "scheduling.k8s.io")
    referring, named = referring_first([roles, priorities, crb, classes, pvs])
    assert referring == [crb, pvs] and named == [roles, priorities, classes]

    refs = ReferenceCollector(frozenset({"shop"}))
    assert refs.referred(named) == [], "nothing kept names a cluster object: no list is worth making"
    refs.observe(RB, _obj("b", roleRef={"kind": "ClusterRole", "name": "view"}))
    assert refs.referred(named) == [roles]
    pv = {"metadata": {"name": "pv-1"}, "spec": {"claimRef": {"namespace": "shop"}, "storageClassName": "gp3"}}
    assert refs.wants(pvs, pv)
    assert refs.referred(named) == [roles, classes]
