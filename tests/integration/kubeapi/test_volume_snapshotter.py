"""The test server's snapshot CRDs' schema and its simulated external-snapshotter, over HTTPS."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.kubeapi import KubeAPIServer
from sandbox.kubeapi.snapshotter import ERROR, NEVER_READY
from tests.support.kubeapi import Client
from tests.support.volumes import claim, preprovisioned_content, snapshot, snapshot_class, volume

SNAPS = "/apis/snapshot.storage.k8s.io/v1"
DELAY = 0.3


@pytest.fixture(scope="module")
def server() -> Iterator[KubeAPIServer]:
    srv = KubeAPIServer(namespace_delete_delay=0, snapshotter=True, snapshot_ready_delay=DELAY).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def api(server: KubeAPIServer) -> Iterator[Client]:
    server.snapshotter.clear()
    yield Client(server)
    server.snapshotter.clear()


@pytest.fixture
def ns(api: Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    assert api.call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    return name


def _post(api: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, payload, _ = api.call("POST", path, body)
    assert status == 201, payload
    assert isinstance(payload, dict)
    return payload


def _bound_claim(api: Client, ns: str, name: str = "data", size: str = "2Gi") -> str:
    pv = f"pv-{ns}-{name}"
    _post(api, "/api/v1/persistentvolumes", volume(pv, ns, name, size))
    _post(api, f"/api/v1/namespaces/{ns}/persistentvolumeclaims", claim(name, pv, size))
    return pv


def _klass(api: Client, policy: str = "Delete", default: bool = False) -> str:
    name = f"c-{uuid.uuid4().hex[:8]}"
    _post(api, f"{SNAPS}/volumesnapshotclasses", snapshot_class(name, policy=policy, default=default))
    return name


def _get(api: Client, path: str) -> dict[str, Any]:
    status, payload, _ = api.call("GET", path)
    assert status == 200, payload
    assert isinstance(payload, dict)
    return payload


def _wait_status(api: Client, path: str, key: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        obj = _get(api, path)
        status = obj.get("status") or {}
        if status.get(key) or time.monotonic() > deadline:
            return obj
        time.sleep(0.05)


# -- schema ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metadata": {"name": "s"}}, "spec"),
        ({"metadata": {"name": "s"}, "spec": {}}, "spec.source"),
        ({"metadata": {"name": "s"}, "spec": {"source": {}}}, "spec.source"),
        (
            {
                "metadata": {"name": "s"},
                "spec": {"source": {"persistentVolumeClaimName": "a", "volumeSnapshotContentName": "b"}},
            },
            "spec.source",
        ),
        (
            {
                "metadata": {"name": "s"},
                "spec": {"volumeSnapshotClassName": "", "source": {"persistentVolumeClaimName": "a"}},
            },
            "spec",
        ),
    ],
)
def test_a_snapshot_needs_exactly_one_source(api: Client, ns: str, body: dict[str, Any], field: str) -> None:
    status, payload, _ = api.call("POST", f"{SNAPS}/namespaces/{ns}/volumesnapshots", body)
    assert status == 422, payload
    assert [c["field"] for c in payload["details"]["causes"]] == [field]


def test_a_class_needs_a_driver_and_a_known_deletion_policy(api: Client) -> None:
    status, payload, _ = api.call("POST", f"{SNAPS}/volumesnapshotclasses", {"metadata": {"name": "x"}})
    assert status == 422
    assert {c["field"] for c in payload["details"]["causes"]} == {"driver", "deletionPolicy"}
    body = {"metadata": {"name": "x"}, "driver": "d", "deletionPolicy": "Keep"}
    status, payload, _ = api.call("POST", f"{SNAPS}/volumesnapshotclasses", body)
    assert status == 422
    assert payload["details"]["causes"][0]["reason"] == "FieldValueNotSupported"


def test_a_content_needs_policy_driver_source_and_a_full_snapshot_ref(api: Client) -> None:
    status, payload, _ = api.call("POST", f"{SNAPS}/volumesnapshotcontents", {"metadata": {"name": "x"}, "spec": {}})
    assert status == 422
    fields = {c["field"] for c in payload["details"]["causes"]}
    assert fields == {"spec.deletionPolicy", "spec.driver", "spec.source", "spec.volumeSnapshotRef"}
    body = preprovisioned_content("x", "snap-1", "ns", "s")
    del body["spec"]["volumeSnapshotRef"]["namespace"]
    status, payload, _ = api.call("POST", f"{SNAPS}/volumesnapshotcontents", body)
    assert status == 422
    assert payload["details"]["causes"][0]["field"] == "spec.volumeSnapshotRef"


def test_a_snapshot_source_is_immutable(api: Client, ns: str) -> None:
    created = _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("s", "missing"))
    created["spec"]["source"] = {"persistentVolumeClaimName": "other"}
    del created["metadata"]["resourceVersion"]  # the controller has written the status since
    status, payload, _ = api.call("PUT", f"{SNAPS}/namespaces/{ns}/volumesnapshots/s", created)
    assert status == 422
    assert "source is immutable" in payload["message"]


# -- the snapshotter ---------------------------------------------------------------------------------------------


def test_a_snapshot_of_a_bound_claim_gets_a_content_then_becomes_ready(api: Client, ns: str) -> None:
    pv = _bound_claim(api, ns, size="2Gi")
    klass = _klass(api, policy="Retain")
    snap = _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("s1", "data", klass))
    path = f"{SNAPS}/namespaces/{ns}/volumesnapshots/s1"
    bound = _get(api, path)
    content_name = f"snapcontent-{snap['metadata']['uid']}"
    assert bound["status"] == {"boundVolumeSnapshotContentName": content_name, "readyToUse": False}
    content = _get(api, f"{SNAPS}/volumesnapshotcontents/{content_name}")
    assert content["spec"]["deletionPolicy"] == "Retain"
    assert content["spec"]["driver"] == "ebs.csi.aws.com"
    assert content["spec"]["source"] == {"volumeHandle": f"vol-{pv}"}
    assert content["spec"]["volumeSnapshotClassName"] == klass
    ref = content["spec"]["volumeSnapshotRef"]
    assert (ref["kind"], ref["namespace"], ref["name"], ref["uid"]) == (
        "VolumeSnapshot",
        ns,
        "s1",
        snap["metadata"]["uid"],
    )

    ready = _wait_status(api, path, "readyToUse")
    assert ready["status"]["readyToUse"] is True
    assert ready["status"]["restoreSize"] == "2Gi"
    assert ready["status"]["creationTime"].endswith("Z")
    content = _get(api, f"{SNAPS}/volumesnapshotcontents/{content_name}")
    assert content["status"]["readyToUse"] is True
    assert content["status"]["restoreSize"] == 2 * 2**30
    assert content["status"]["snapshotHandle"].startswith("snap-")
    assert isinstance(content["status"]["creationTime"], int)


def test_the_drivers_default_class_is_used_when_none_is_named(api: Client, ns: str, server: KubeAPIServer) -> None:
    _bound_claim(api, ns)
    klass = _klass(api, default=True)
    try:
        _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("s1", "data"))
        content_name = _get(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots/s1")["status"][
            "boundVolumeSnapshotContentName"
        ]
        assert _get(api, f"{SNAPS}/volumesnapshotcontents/{content_name}")["spec"]["volumeSnapshotClassName"] == klass
    finally:
        api.call("DELETE", f"{SNAPS}/volumesnapshotclasses/{klass}")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing-class", 'volumesnapshotclass.snapshot.storage.k8s.io "nope" not found'),
        ("no-default", "cannot find default snapshot class"),
        ("unbound", "is not yet bound to a PV"),
        ("no-claim", 'persistentvolumeclaim "data" not found'),
    ],
)
def test_a_snapshot_that_cannot_be_taken_reports_an_error(api: Client, ns: str, setup: str, message: str) -> None:
    klass: str | None = "nope" if setup == "missing-class" else None
    if setup == "unbound":
        _post(
            api,
            f"{SNAPS}/namespaces/{ns}/volumesnapshotclasses".replace(f"/namespaces/{ns}", ""),
            snapshot_class(f"c-{ns}"),
        )
        _post(api, f"/api/v1/namespaces/{ns}/persistentvolumeclaims", claim("data"))
        klass = f"c-{ns}"
    elif setup != "no-claim":
        _bound_claim(api, ns)
    else:
        klass = _klass(api)
    _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("s1", "data", klass))
    status = _get(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots/s1")["status"]
    assert status["readyToUse"] is False
    assert message in status["error"]["message"]
    assert "boundVolumeSnapshotContentName" not in status


def test_injected_faults_never_ready_and_error(api: Client, ns: str, server: KubeAPIServer) -> None:
    _bound_claim(api, ns, "slow")
    _bound_claim(api, ns, "broken")
    klass = _klass(api)
    server.snapshotter.inject(ns, "slow", NEVER_READY)
    server.snapshotter.inject(ns, "broken", ERROR, "rpc error: code = Internal desc = disk gone")
    _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("slow", "slow", klass))
    _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("broken", "broken", klass))
    time.sleep(DELAY * 2)
    slow = _get(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots/slow")["status"]
    assert slow["readyToUse"] is False and "error" not in slow and slow["boundVolumeSnapshotContentName"]
    broken = _get(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots/broken")["status"]
    assert broken["readyToUse"] is False
    assert broken["error"]["message"] == "rpc error: code = Internal desc = disk gone"
    content = _get(api, f"{SNAPS}/volumesnapshotcontents/{broken['boundVolumeSnapshotContentName']}")
    assert content["status"]["error"]["message"] == "rpc error: code = Internal desc = disk gone"


@pytest.mark.parametrize("policy", ["Delete", "Retain"])
def test_deleting_a_snapshot_honours_its_contents_deletion_policy(
    api: Client, ns: str, server: KubeAPIServer, policy: str
) -> None:
    _bound_claim(api, ns)
    klass = _klass(api, policy=policy)
    _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("s1", "data", klass))
    path = f"{SNAPS}/namespaces/{ns}/volumesnapshots/s1"
    ready = _wait_status(api, path, "readyToUse")
    content_name = ready["status"]["boundVolumeSnapshotContentName"]
    handle = _get(api, f"{SNAPS}/volumesnapshotcontents/{content_name}")["status"]["snapshotHandle"]
    assert handle in server.snapshotter.storage
    assert api.call("DELETE", path)[0] == 200
    status, _, _ = api.call("GET", f"{SNAPS}/volumesnapshotcontents/{content_name}")
    assert status == (404 if policy == "Delete" else 200)
    assert (handle in server.snapshotter.storage) is (policy == "Retain")


def test_a_preprovisioned_content_binds_when_its_handle_exists(api: Client, ns: str) -> None:
    _bound_claim(api, ns)
    _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("orig", "data", _klass(api, policy="Retain")))
    orig = _wait_status(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots/orig", "readyToUse")
    content = _get(api, f"{SNAPS}/volumesnapshotcontents/{orig['status']['boundVolumeSnapshotContentName']}")
    handle = content["status"]["snapshotHandle"]

    _post(api, f"{SNAPS}/volumesnapshotcontents", preprovisioned_content(f"pre-{ns}", handle, ns, "restored"))
    _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("restored", content=f"pre-{ns}"))
    restored = _wait_status(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots/restored", "readyToUse")
    assert restored["status"]["readyToUse"] is True
    assert restored["status"]["boundVolumeSnapshotContentName"] == f"pre-{ns}"
    assert restored["status"]["restoreSize"] == "2Gi"

    _post(api, f"{SNAPS}/volumesnapshotcontents", preprovisioned_content(f"gone-{ns}", "snap-0000", ns, "lost"))
    _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("lost", content=f"gone-{ns}"))
    lost = _get(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots/lost")["status"]
    assert lost["readyToUse"] is False
    assert "snapshot snap-0000 not found" in lost["error"]["message"]


def test_without_the_snapshotter_a_snapshot_stays_untouched() -> None:
    with KubeAPIServer(namespace_delete_delay=0) as srv:
        api = Client(srv)
        assert api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "n"}})[0] == 201
        _post(api, f"{SNAPS}/namespaces/n/volumesnapshots", snapshot("s", "data", "c"))
        assert "status" not in _get(api, f"{SNAPS}/namespaces/n/volumesnapshots/s")


def test_a_bound_preprovisioned_content_refuses_a_snapshot_created_anew(api: Client, ns: str) -> None:
    _bound_claim(api, ns)
    _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("orig", "data", _klass(api, policy="Retain")))
    orig = _wait_status(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots/orig", "readyToUse")
    handle = _get(api, f"{SNAPS}/volumesnapshotcontents/{orig['status']['boundVolumeSnapshotContentName']}")["status"][
        "snapshotHandle"
    ]
    _post(api, f"{SNAPS}/volumesnapshotcontents", preprovisioned_content(f"pre-{ns}", handle, ns, "again"))
    first = _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("again", content=f"pre-{ns}"))
    content = _get(api, f"{SNAPS}/volumesnapshotcontents/pre-{ns}")
    assert content["spec"]["volumeSnapshotRef"]["uid"] == first["metadata"]["uid"]
    assert api.call("DELETE", f"{SNAPS}/namespaces/{ns}/volumesnapshots/again")[0] == 200
    _post(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots", snapshot("again", content=f"pre-{ns}"))
    status = _get(api, f"{SNAPS}/namespaces/{ns}/volumesnapshots/again")["status"]
    assert status["readyToUse"] is False
    assert "bound to a different VolumeSnapshot" in status["error"]["message"]
