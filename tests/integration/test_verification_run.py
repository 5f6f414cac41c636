"""A verification run against the Kubernetes API test server (or a real cluster): restore the sample app's backup into
scratch namespaces, read every object back, clean up, and report what differs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.repository import RepositoryReader
from chalicelib.restore import RestoreService
from chalicelib.verification.run import SUCCEEDED, VerificationRun, backup_namespaces
from tests.support.verification import back_up

VERIFY_LABEL = "lifeboat.io/verification"
NAMESPACES = Resource("", "v1", "Namespace", "namespaces", False, frozenset({"get", "list", "delete"}))
CONFIGMAPS = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"get", "list", "patch", "update"}))


@pytest.fixture
def backed_up(services: Any, kubeconfig_path: Any, app_ns: Any) -> tuple[RepositoryReader, Any]:
    record = back_up(services, kubeconfig_path, None, scope=BackupScope(include_namespaces=tuple(app_ns.namespaces)))
    reader = RepositoryReader(services.repository())
    return reader, reader.load_manifest(record.cluster, record.backup_id)


def _run(reader: RepositoryReader, kube_client: Any, manifest: Any, run_id: str) -> Any:
    return VerificationRun(reader, kube_client, RestoreService(reader, kube_client)).run(manifest, run_id)


def _scratch_namespaces(kube_client: Any, run_id: str) -> list[str]:
    items = kube_client.get(NAMESPACES.collection_path(None), {"labelSelector": f"{VERIFY_LABEL}={run_id}"})["items"]
    return [n["metadata"]["name"] for n in items if not n["metadata"].get("deletionTimestamp")]


def test_the_sample_app_verifies_and_leaves_nothing_behind(backed_up: Any, kube_client: Any, app_ns: Any) -> None:
    reader, manifest = backed_up
    run_id = f"v{uuid.uuid4().hex[:6]}"

    result = _run(reader, kube_client, manifest, run_id)

    assert result.state == SUCCEEDED, result.problems or result.message
    assert result.checked > 20  # every namespaced object of the app, read back and compared
    assert result.rto_s is not None and result.rto_s > 0
    assert set(result.phases) == {"fetch", "apply", "check", "cleanup"}
    assert result.cleanup.namespaces == len(backup_namespaces(reader, manifest))
    assert result.cleanup.errors == ()
    assert _scratch_namespaces(kube_client, run_id) == []
    # The live application was not touched: its namespaces are still there and carry no verification label.
    for namespace in app_ns.namespaces:
        live = kube_client.get_object(NAMESPACES, namespace)
        assert live is not None and VERIFY_LABEL not in (live["metadata"].get("labels") or {})


def test_every_namespace_is_mapped_so_nothing_lands_in_a_live_one(backed_up: Any, kube_client: Any) -> None:
    reader, manifest = backed_up
    run_id = f"v{uuid.uuid4().hex[:6]}"
    seen: list[Any] = []
    restore = RestoreService(reader, kube_client)
    real_run = restore.run

    def watching(*args: Any, **kwargs: Any) -> Any:
        outer = kwargs.pop("on_plan")
        return real_run(*args, on_plan=lambda plan: (seen.append(plan), outer(plan)), **kwargs)

    restore.run = watching  # type: ignore[method-assign]
    VerificationRun(reader, kube_client, restore).run(manifest, run_id)

    [plan] = seen
    targets = {item.namespace for item in plan.items if item.namespace}
    assert targets and all(t.startswith(f"lbv-{run_id}-") for t in targets)
    created = [i for i in plan.items if i.action == "create" and i.namespace is None and i.resource.kind != "Namespace"]
    assert all(i.desired and i.desired["metadata"]["labels"][VERIFY_LABEL] == run_id for i in created)


def test_a_tampered_blob_fails_the_run_before_anything_is_applied(backed_up: Any, kube_client: Any) -> None:
    reader, manifest = backed_up
    repo = reader.repo
    tree_blobs = set(reader.root(manifest).values())
    entry = next(e for scope, e in reader.walk(manifest) if scope and e.blob not in tree_blobs)
    where = reader.load_index()[entry.blob]
    body = bytearray(repo.store.get(repo.pack_key(where.pack)))
    body[where.frame_offset] ^= 0x55  # the frame's zstd magic: the blob no longer reads
    repo.store.put(repo.pack_key(where.pack), bytes(body), create_only=False)
    run_id = f"v{uuid.uuid4().hex[:6]}"

    result = _run(RepositoryReader(reader.repo), kube_client, manifest, run_id)

    assert result.state == "Failed"
    assert "cannot be read; nothing was restored" in result.message
    assert result.checked == 0 and result.rto_s is None
    assert _scratch_namespaces(kube_client, run_id) == []


@pytest.mark.fakeonly
def test_an_object_the_server_changes_is_reported_with_the_field(
    backed_up: Any, kube_client: Any, fake_kube: Any
) -> None:
    reader, manifest = backed_up
    run_id = f"v{uuid.uuid4().hex[:6]}"
    fake_kube.mutate_on_create("configmaps", lambda obj: obj.setdefault("data", {}).update(injected="by-admission"))
    try:
        result = _run(reader, kube_client, manifest, run_id)
    finally:
        fake_kube.mutate_on_create("configmaps", None)

    assert result.state == "Failed"
    problems = [p for p in result.problems if p.key.startswith("configmaps/")]
    assert problems, result.problems
    assert "differs from the backup" in problems[0].problem
    assert any(d["path"].startswith("data") for d in problems[0].differences)
    assert _scratch_namespaces(kube_client, run_id) == []
