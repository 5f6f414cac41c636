"""CPU of the per-object stages of a backup, in this process and without HTTP: the 10,000 objects of
``bench/backup.py`` as list pages (server fields filled in), stored by a ``CompactCollector`` into an in-memory
repository (full), then again with the first backup as the parent (no-op). Best of ``--runs``, µs per object:

  full_pages / noop_pages   handle_page over every page (select, sanitize, serialize, hash, pack / look up)
  full_trees / noop_trees   write_trees, write_root and writer.finish
  noop_open                 loading the repository index and the parent's trees (load_prior)
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib.backup.compact import CompactCollector  # noqa: E402
from chalicelib.backup.listing import Page  # noqa: E402
from chalicelib.backup.reuse import load_prior  # noqa: E402
from chalicelib.core.manifest import Manifest  # noqa: E402
from chalicelib.core.references import ReferenceCollector  # noqa: E402
from chalicelib.core.resources import Resource  # noqa: E402
from chalicelib.core.scope import BackupScope  # noqa: E402
from chalicelib.repository import Repository, RepositoryReader, RepositoryWriter  # noqa: E402
from chalicelib.repository.store import MemoryObjectStore  # noqa: E402

TYPES = {
    "Namespace": Resource("", "v1", "Namespace", "namespaces", False),
    "ConfigMap": Resource("", "v1", "ConfigMap", "configmaps", True),
    "Secret": Resource("", "v1", "Secret", "secrets", True),
    "Deployment": Resource("apps", "v1", "Deployment", "deployments", True),
}


def pages(objects: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[Page]]:
    namespaces = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Namespace"}
    out = [Page(TYPES["Namespace"], list(namespaces.values()))]
    for kind in ("ConfigMap", "Secret", "Deployment"):
        items = [o for o in objects if o["kind"] == kind]
        for i in range(0, len(items), 500):
            out.append(Page(TYPES[kind], items[i : i + 500]))
    return namespaces, out


def run(repo: Repository, namespaces: dict[str, Any], listed: list[Page], parent: Manifest | None) -> dict[str, Any]:
    cpu = time.process_time
    started = cpu()
    reader = RepositoryReader(repo)
    index = reader.load_index()
    prior = load_prior(reader, parent, "cluster") if parent is not None else None
    opened = cpu()
    writer = RepositoryWriter(repo, known=index)
    collector = CompactCollector(
        BackupScope(include_namespaces=("bench-*",)), namespaces, writer, prior=prior, index=index
    )
    refs = ReferenceCollector(collector.namespaces)
    for page in listed:
        collector.handle_page(page, refs)
    handled = cpu()
    trees = collector.write_trees()
    root = collector.write_root(trees)
    index_files = writer.finish()
    written = cpu()
    manifest = Manifest(
        backup_id=f"20260101T00000{0 if parent is None else 1}Z-aaaaaa",
        cluster="bench",
        policy=None,
        parent=None,
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:00:00Z",
        kubernetes_version="v1",
        scope={},
        root_tree=root,
        counts={"objects": collector.objects},
        kinds={},
        index_files=index_files,
        cluster_uid="cluster",
    )
    writer.write_manifest(manifest)
    return {
        "open": opened - started,
        "pages": handled - opened,
        "trees": written - handled,
        "manifest": manifest,
        "objects": collector.objects,
        "reused": collector.reused,
        "root": root,
        "new": writer.stats.blobs_new,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(" ".join(f"{k}={v:.2f}" for k, v in best_stages(args.runs).items()))


def best_stages(runs: int) -> dict[str, float]:
    """Each stage's best of ``runs``, µs per object, and the totals of those (``full_total``, ``noop_total``)."""
    from sandbox.synthetic import synthetic_objects

    objects = list(
        synthetic_objects(
            namespaces=20, configmaps=4750, secrets=4750, deployments=500, size_bytes=1024, server_fields=True
        )
    )
    best: dict[str, float] = {}
    for _ in range(runs):
        namespaces, listed = pages(copy.deepcopy(objects))
        repo = Repository.open(MemoryObjectStore(), create=True)
        full = run(repo, namespaces, listed, None)
        namespaces, listed = pages(copy.deepcopy(objects))
        noop = run(repo, namespaces, listed, full["manifest"])
        assert noop["root"] == full["root"], "a no-op backup must give the same root tree"
        assert noop["reused"] == noop["objects"] == full["objects"], (noop["reused"], noop["objects"])
        assert noop["new"] == 0, noop["new"]
        n = full["objects"]
        for name, result in (("full", full), ("noop", noop)):
            for stage in ("open", "pages", "trees"):
                key = f"{name}_{stage}"
                best[key] = min(best.get(key, float("inf")), result[stage] / n * 1e6)
    best["full_total"] = best["full_open"] + best["full_pages"] + best["full_trees"]
    best["noop_total"] = best["noop_open"] + best["noop_pages"] + best["noop_trees"]
    return best


if __name__ == "__main__":
    main()
