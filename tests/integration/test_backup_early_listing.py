"""A one-shot backup that runs no pre hook lists while its job is claimed, and stores what a later listing would."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.backup import BackupService
from chalicelib.backup.collect import Listing
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.scope import BackupScope
from chalicelib.services import Services


def _job(kubeconfig_path: Any, namespaces: list[str], cluster: str = "early-cluster", job_id: str = "") -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=job_id or f"t-{uuid.uuid4()}",
        cluster=ClusterRef(cluster, auth),
        scope=BackupScope(include_namespaces=tuple(namespaces)),
    )


@dataclass
class Listings:
    """Every listing a backup started (``PageStream``), in order; ``started`` is set by the first."""

    streams: list[Any] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> Listings:
    seen = Listings()
    start = Listing.start

    def recording(self: Listing, *args: Any, **kwargs: Any) -> Any:
        stream = start(self, *args, **kwargs)
        seen.streams.append(stream)
        seen.started.set()
        return stream

    monkeypatch.setattr(Listing, "start", recording)
    return seen


def _claiming_once_listed(catalog: Any, listings: Listings, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The catalog's claim answers only once a listing has started (up to 10 s); whether one had, per claim."""
    claim = catalog.claim_job
    seen: list[bool] = []

    def claiming_late(*args: Any, **kwargs: Any) -> Any:
        seen.append(listings.started.wait(timeout=10))
        return claim(*args, **kwargs)

    monkeypatch.setattr(catalog, "claim_job", claiming_late)
    return seen


def _service(services: Services, catalog: Any) -> BackupService:
    return BackupService(catalog, lambda: services.repository(create=True), services.connect)


def test_the_listing_starts_before_the_job_is_claimed_and_stores_the_same_trees(
    services, kubeconfig_path, app_ns, listings, monkeypatch
):
    from chalicelib.repository import RepositoryReader

    catalog = services.catalog()
    seen = _claiming_once_listed(catalog, listings, monkeypatch)
    early = _service(services, catalog).run(_job(kubeconfig_path, app_ns.namespaces)).record
    assert early.state == "Completed", early.failure or early.errors
    assert seen == [True], "the listing started while the job was being claimed"
    assert len(listings.streams) == 1, "and it is the listing the backup stored"

    # A full backup of another cluster name, listed after its claim (as a backup with a pre hook is), of the same
    # unchanged objects: the same trees.
    monkeypatch.setattr(BackupService, "_list_early", lambda self, job, view, guess: None)
    late = _service(services, catalog).run(_job(kubeconfig_path, app_ns.namespaces, cluster="late-cluster")).record
    assert late.state == "Completed", late.failure or late.errors
    reader = RepositoryReader(services.repository())
    manifests = [reader.load_manifest(r.cluster, r.backup_id) for r in (early, late)]
    assert manifests[0].root_tree == manifests[1].root_tree and manifests[0].kinds == manifests[1].kinds
    assert early.counts["objects"] == late.counts["objects"] > 0
    assert late.counts["blobs_new"] == 0, "every object the later listing found was one the early listing stored"


def test_a_listing_started_for_a_duplicate_delivery_stops(services, kubeconfig_path, app_ns, listings, monkeypatch):
    catalog = services.catalog()
    job = _job(kubeconfig_path, app_ns.namespaces)
    first = _service(services, catalog).run(job).record
    assert first.state == "Completed", first.failure or first.errors
    listings.streams.clear()
    listings.started.clear()
    seen = _claiming_once_listed(catalog, listings, monkeypatch)
    again = _service(services, catalog).run(job)
    assert not again.created and again.record.backup_id == first.backup_id
    assert seen == [True] and len(listings.streams) == 1, "the duplicate started listing before its claim was refused"
    feeder = listings.streams[0]._feeder
    deadline = time.monotonic() + 10
    while feeder.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not feeder.is_alive(), "its listing threads stopped"
