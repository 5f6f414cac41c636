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


# Sanitizer version 2 (Services name their user-set node ports) gave every tree a new id.
GOLDEN_TREES = {
    "": "575babb9e0ca1f00ad36b34ad153a8fa3e1a8c12874dac515e80efac502803d3",
    "bench-000": "e090a631255ab524b76da4eb7f3a2d54ca3134819ca6dd780e162a99b2c5c9d2",
    "bench-001": "2e9e49cb3ec9cac3811d3b733cde74b07819254c7c0b159766fe21f5c95b8292",
    "bench-002": "5fc1ded2ae5eba1107b9bceb3f3a0428e58a4c4e55541017a5b61452f8510a3a",
    "bench-003": "606d669ba5bc27b57234d46ba8f79ec5e3074e99daf90751221d01a1b37f2418",
}
GOLDEN_ROOT = "3e22753aa61e6745165dfe0fa84fc2e019dec409ee7786e77605eece24878665"


def test_trees_of_a_fixed_fixture_keep_their_ids():
    trees, root = backup_trees()
    assert trees == GOLDEN_TREES
    assert root == GOLDEN_ROOT


def test_the_compact_collector_writes_the_same_trees():
    from chalicelib.backup.compact import CompactCollector

    assert backup_trees(CompactCollector) == (GOLDEN_TREES, GOLDEN_ROOT)
