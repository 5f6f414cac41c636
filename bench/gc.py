"""Garbage-collection benchmark: ~50,000 blobs in emulated S3 (moto, in process), most of them dead.

The repository is the history of one cluster of 5,000 objects in 10 namespaces: each of 90 backups rewrites every
object of one namespace (500 new blobs, a new scope tree, a new root), the way a busy namespace changes. Retention
then keeps the newest 20 manifests, and the collection marks what they reach and deletes the rest, with every pack
past the safety margin. Only ``collect_garbage`` is timed; ``check_repository`` then proves nothing live was lost.

Prints a table and, last, one JSON line:
  blobs                      blobs in the index before the collection
  gc_seconds                 wall time of the collection (mark, decide, write the index, delete)
  gc_seconds_per_10k_blobs   gc_seconds per 10,000 indexed blobs
  packs_deleted / packs      dead packs deleted / packs before
  live_blobs                 blobs reachable from the kept manifests
  gc_vs_reading_index_and_packs  gc_seconds / the time to load the index and list the packs (same run)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

NAMESPACES = 10
KEEP = 20
BUCKET = "lifeboat-bench-gc"


def _objects(namespace: str, version: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i}", "namespace": namespace, "labels": {"app": "bench", "rev": str(version)}},
            "data": {"config.yaml": f"revision: {version}\nkey: {namespace}-{i}\n" + "x" * 200},
        }
        for i in range(count)
    ]


def build(repo: Any, backups: int, per_namespace: int) -> list[str]:
    """Write the history by the production write stage (tests/support/builders.py); returns the backup ids, oldest
    first."""
    from chalicelib.repository import RepositoryWriter
    from tests.support.builders import write_backup

    known: set[Any] = set()
    revisions: dict[str, int] = {}
    ids = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for step in range(backups):
        changed = [f"ns-{n}" for n in range(NAMESPACES)] if step == 0 else [f"ns-{step % NAMESPACES}"]
        revisions.update({namespace: step for namespace in changed})
        objects = [obj for ns, rev in sorted(revisions.items()) for obj in _objects(ns, rev, per_namespace)]
        at = start + timedelta(hours=step)
        backup_id = f"{at:%Y%m%dT%H%M%SZ}-{step:06x}"
        written = write_backup(
            repo,
            objects,
            cluster="bench",
            backup_id=backup_id,
            policy="hourly",
            writer=RepositoryWriter(repo, known=known),
            started_at=f"{at:%Y-%m-%dT%H:%M:%SZ}",
            finished_at=at,
        )
        known |= written.reached  # the next backup deduplicates against this one's blobs
        ids.append(backup_id)
    return ids


def measure(blobs: int = 50_000) -> dict[str, Any]:
    """Build a repository of about ``blobs`` blobs in moto, expire all but the newest manifests, time the GC."""
    fake = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    for key, value in fake.items():
        os.environ[key] = value  # never a real account
    import boto3
    from moto import mock_aws

    from chalicelib.maintenance.gc import collect_garbage
    from chalicelib.repository import Repository, RepositoryReader, S3ObjectStore, check_repository

    per_namespace = 500
    backups = max(KEEP + 1, round((blobs - NAMESPACES * per_namespace) / per_namespace) + 1)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        repo = Repository.open(S3ObjectStore(s3, BUCKET), create=True)
        started = time.perf_counter()
        ids = build(repo, backups, per_namespace)
        build_s = time.perf_counter() - started
        indexed = len(RepositoryReader(repo).load_index())
        packs_before = sum(1 for _ in repo.store.list("packs/"))
        for backup_id in ids[:-KEEP]:  # what retention (keep_last: 20) deletes before the collection
            repo.store.delete(Repository.manifest_key("bench", backup_id))
        # Baseline, same run: what any collection must read at least (the index and the pack listing).
        started = time.perf_counter()
        RepositoryReader(repo).load_index()
        sum(1 for _ in repo.store.list_info("packs/"))
        baseline_s = time.perf_counter() - started
        started = time.perf_counter()
        report = collect_garbage(repo, now=datetime.now(UTC) + timedelta(hours=25))
        gc_s = time.perf_counter() - started
        check = check_repository(RepositoryReader(repo), read_data=False)
        if not check.ok:
            raise SystemExit(f"the collection broke the repository: {check.problems[:3]}")
    return {
        "blobs": indexed,
        "backups": backups,
        "kept_manifests": KEEP,
        "live_blobs": report.blobs_live,
        "packs": packs_before,
        "packs_deleted": len(report.packs_deleted),
        "build_s": round(build_s, 2),
        "gc_seconds": round(gc_s, 3),
        "gc_seconds_per_10k_blobs": round(gc_s / (indexed / 10_000), 3),
        "baseline_read_s": round(baseline_s, 3),
        "gc_vs_reading_index_and_packs": round(gc_s / baseline_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=50_000)
    result = measure(parser.parse_args().blobs)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Garbage collection (moto S3, in process)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    Console(stderr=True).print(table)
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
