"""A one-shot backup's listing: the namespace list, the namespaced types' pages, then the cluster types, each page
handed to the collector that stores it (``BackupService`` starts, opens and commits around it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from typing import Any

from chalicelib.backup.head_start import Opened
from chalicelib.backup.items import ItemCollector
from chalicelib.backup.listing import ListFailure, Page, PageStream
from chalicelib.backup.metadata_first import MetadataFirst, read_changed
from chalicelib.backup.reuse import PriorObjects
from chalicelib.core.references import ReferenceCollector, referring_first
from chalicelib.core.resources import Resource
from chalicelib.core.scope import EXCLUDE_LABEL, SERVER_EXCLUSIONS, BackupScope

# The namespace whose uid names the cluster (the trees' uids and resourceVersions are of that cluster).
CLUSTER_ID_NAMESPACE = "kube-system"

# Reads whole the objects whose metadata a page of metadata listed (``metadata_first.read_changed``).
ReadWhole = Callable[[Resource, list[dict[str, Any]], Page], list[dict[str, Any]]]


class Listing:
    """Lists for one backup service: ``workers`` list requests at once, ``page_size`` objects a page."""

    def __init__(self, *, workers: int, page_size: int) -> None:
        self.workers = workers
        self.page_size = page_size

    def namespaces(
        self, client: Any, res: Resource, scope: BackupScope
    ) -> tuple[dict[str, dict[str, Any]], str | None]:
        """Selected namespaces by name (a namespace labelled with the exclusion label is left out whole), and the
        cluster's identity: the uid of its kube-system namespace (None when there is none)."""
        selected: dict[str, dict[str, Any]] = {}
        cluster_uid: str | None = None
        for page in client.list_pages(res.collection_path(), limit=self.page_size):
            if page.restarted:
                selected.clear()
            for obj in page.items:
                meta = obj.get("metadata") or {}
                name = meta.get("name", "")
                if name == CLUSTER_ID_NAMESPACE:
                    cluster_uid = str(meta.get("uid") or "") or None
                if (meta.get("labels") or {}).get(EXCLUDE_LABEL) == "true":
                    continue
                if scope.namespace_selected(name):
                    selected[name] = obj
        return selected, cluster_uid

    def start(
        self,
        client: Any,
        scope: BackupScope,
        ns_objects: dict[str, dict[str, Any]],
        namespaced: list[Resource],
        metadata_first: MetadataFirst | None = None,
    ) -> PageStream:
        """The namespaced types' pages (``listed_types``), listed from now on, cluster-wide."""
        types, _ = listed_types(scope, ns_objects, namespaced, [])
        return PageStream(
            client,
            types,
            scope.server_selector(),
            workers=self.workers,
            page_size=self.page_size,
            metadata_first=metadata_first,
        )

    def read_changed(self, client: Any, scope: BackupScope, pool: Executor) -> ReadWhole:
        """What reads whole the changed objects of a page of metadata ``start`` listed (``read_changed``: the page
        again from the same cluster-wide collection, or a GET each on ``pool``)."""
        selector = scope.server_selector() or None

        def read(res: Resource, listed: list[dict[str, Any]], page: Page) -> list[dict[str, Any]]:
            return read_changed(
                client,
                res,
                listed,
                page,
                pool,
                path=res.collection_path(),
                label_selector=selector,
                page_size=self.page_size,
            )

        return read

    def collect(
        self,
        client: Any,
        collector: ItemCollector,
        pages: PageStream,
        namespaces_res: Resource,
        ns_objects: dict[str, dict[str, Any]],
        namespaced: list[Resource],
        cluster_types: list[Resource],
        *,
        read: ReadWhole,
        heartbeat: Callable[[], None],
    ) -> int:
        """Store everything in scope: the namespaced types' ``pages`` (``start``), then the cluster types; returns
        how many types were listed (Namespaces included). ``read`` reads whole the objects of a type whose metadata
        a page of metadata listed; ``heartbeat`` is called after each page."""
        scope = collector.scope
        refs = ReferenceCollector(collector.namespaces)

        # Namespaces themselves: the containers of everything else, kept in every mode.
        collector.handle_page(Page(namespaces_res, list(ns_objects.values())), refs)
        mode = scope.effective_cluster_scoped
        kept_namespaced, kept_cluster = listed_types(scope, ns_objects, namespaced, cluster_types)
        # Types not listed for want of objects count as listed: none of them failed.
        listed = 1 + len(namespaced) - len(kept_namespaced) + len(cluster_types) - len(kept_cluster)
        namespaced, cluster_types = kept_namespaced, kept_cluster
        listed += _consume(pages, namespaced, collector, refs, read, heartbeat)

        def list_cluster(types: list[Resource], selector: str, cluster_refs: ReferenceCollector | None) -> int:
            """List and store cluster-scoped ``types``, several at once: how many were listed."""
            if not types:
                return 0
            pages = PageStream(client, types, selector, workers=self.workers, page_size=self.page_size)
            return _consume(pages, types, collector, cluster_refs, read, heartbeat)

        if cluster_types and mode == "auto":
            # The referring types are read before the types they name; of those, only the types something kept
            # names hold an object the backup keeps (what the namespaced objects name is known by now).
            referring, named = referring_first(cluster_types)
            listed += list_cluster(referring, SERVER_EXCLUSIONS, refs)
            wanted = refs.referred(named)
            listed += len(named) - len(wanted)  # not listed for want of a referring object: none of them failed
            listed += list_cluster(wanted, SERVER_EXCLUSIONS, refs)
        elif cluster_types:
            listed += list_cluster(cluster_types, scope.server_selector(), None)
        return listed


def metadata_first(
    parent: str | Callable[[], str | None] | None,
    scope: BackupScope,
    ns_objects: Mapping[str, Any],
    opening: Future[Opened] | None,
    cluster_uid: str | None,
) -> MetadataFirst | None:
    """What lists the namespaced types as metadata first: an incremental's, whose parent (its id, or what gives it
    once confirmed) is read by ``opening`` (None: a full backup, or a sharded one, lists whole)."""
    if opening is None or not parent or not cluster_uid:
        return None

    def prior() -> PriorObjects | None:
        return opening.result().prior_for(parent() if callable(parent) else parent, cluster_uid)

    # The listing does not wait for the parent's trees: until they are read, pages are kept as metadata.
    return MetadataFirst(scope, frozenset(ns_objects), prior, ready=opening.done)


def listed_types(
    scope: BackupScope, ns_objects: Mapping[str, Any], namespaced: list[Resource], cluster_types: list[Resource]
) -> tuple[list[Resource], list[Resource]]:
    """The namespaced and cluster-scoped types a backup lists. With no namespace selected, no namespaced object can
    be kept, and in auto mode none refers to a cluster object either: listing them would be requests for nothing."""
    if ns_objects:
        return namespaced, cluster_types
    return [], [] if scope.effective_cluster_scoped == "auto" else cluster_types


def _consume(
    pages: Any,
    resources: list[Resource],
    collector: ItemCollector,
    refs: ReferenceCollector | None,
    read: ReadWhole,
    heartbeat: Callable[[], None],
) -> int:
    failed: set[str] = set()
    for item in pages:
        res = item.resource
        if res.group_resource in failed:
            continue  # what is left of a type that failed
        if isinstance(item, ListFailure):
            failed.add(res.group_resource)
            collector.fail(res, item.error)
            continue
        collector.handle_page(item, refs)
        unread = collector.take_unread() if item.metadata_only else []
        if unread:
            try:
                whole = read(res, unread, item)
            except Exception as exc:  # noqa: BLE001 -- recorded per type, as a list that fails is
                failed.add(res.group_resource)
                collector.fail(res, f"reading a changed object whole failed: {exc}")
                continue
            collector.handle_page(Page(res, whole), refs)
        heartbeat()
    # Used to tell "nothing could be listed" (Failed) from "some types failed" (PartiallyFailed).
    return len(resources) - len(failed)
