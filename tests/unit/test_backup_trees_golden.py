"""The one-shot pipeline's trees are the format's: fixed objects give the same tree and root ids, release to release.

The ids below were computed by the pipeline as it was before its entries were kept compact (#9); a change that
alters a tree's bytes for the same objects fails here, not in a customer's next backup.
"""

from __future__ import annotations

from typing import Any

from chalicelib.backup.items import ItemCollector
from chalicelib.backup.listing import Page
from chalicelib.core.ids import BlobId
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.repository import MemoryObjectStore, Repository, RepositoryWriter
from sandbox.synthetic import synthetic_objects
from tests.support.resources import resource_of


def fixture_pages() -> tuple[dict[str, dict[str, Any]], list[Page]]:
    """Namespaces and pages of ConfigMaps, Secrets and Deployments with server fields (uids, resourceVersions)."""
    objs = list(synthetic_objects(namespaces=4, configmaps=40, secrets=30, deployments=10, seed=3, server_fields=True))
    namespaces = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Namespace"}
    by_type: dict[Resource, list[dict[str, Any]]] = {}
    for obj in objs:
        if obj["kind"] != "Namespace":
            by_type.setdefault(resource_of(obj), []).append(obj)
    # Pages of 7, each type's pages interleaved with the others', as several listing threads deliver them.
    pages: list[Page] = []
    chunks = {res: [items[i : i + 7] for i in range(0, len(items), 7)] for res, items in by_type.items()}
    for i in range(max(len(c) for c in chunks.values())):
        pages.extend(Page(res, c[i]) for res, c in chunks.items() if i < len(c))
    return namespaces, pages


def backup_trees(collector_type: type[ItemCollector] = ItemCollector) -> tuple[dict[str, BlobId], BlobId]:
    namespaces, pages = fixture_pages()
    writer = RepositoryWriter(Repository.open(MemoryObjectStore(), create=True))
    collector = collector_type(BackupScope(), namespaces, writer)
    collector.handle_page(Page(resource_of(next(iter(namespaces.values()))), list(namespaces.values())), None)
    for page in pages:
        collector.handle_page(page, None)
    trees = collector.write_trees()
    root = collector.write_root(trees)
    writer.finish()
    return trees, root


GOLDEN_TREES = {
    "": "f70d641b821a221f231e2f4c66bf6b16b12f9e4fc4cc17ef197d5885a43c7736",
    "bench-000": "a25f2f45f56d208346c82563de61fc5b959fee8d77263e220434cb364e137175",
    "bench-001": "4c1f8394a5bfa1055b593029a03d03252f14f8b9acde8d71db5fa21f03374718",
    "bench-002": "50a35c17d5e4940e0d7b039b48e83efdfc09506f7154dc5cf4a8819c4dcb1740",
    "bench-003": "89f99fbf380e147e363decb6be1ee4fb3bea4fbb15c633307e7eae8173e74127",
}
GOLDEN_ROOT = "3c137a44ee8af07a7752397b0d7c0b67014a92297289c0ed7deeeddcf841c5d9"


def test_trees_of_a_fixed_fixture_keep_their_ids():
    trees, root = backup_trees()
    assert trees == GOLDEN_TREES
    assert root == GOLDEN_ROOT


def test_the_compact_collector_writes_the_same_trees():
    from chalicelib.backup.compact import CompactCollector

    assert backup_trees(CompactCollector) == (GOLDEN_TREES, GOLDEN_ROOT)
