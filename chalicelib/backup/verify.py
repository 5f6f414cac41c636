"""Re-verifying what a backup deduplicates against: a bounded random sample of its reused blobs, per pack."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.core.ids import BlobId, PackId

# Reading every reused blob would cost what deduplication saves; a sample per pack finds a damaged frame or pack
# with high probability (a damaged frame breaks every blob in it) at a bounded cost of at most this many blobs'
# frames per pack, and the daily sampled ``repo check --read-data`` covers the rest over time.
SAMPLE_PER_PACK = 64


def reused_blobs(entries: Mapping[str, Iterable[Any]], index: Mapping[BlobId, Any]) -> set[BlobId]:
    """Blobs the new backup's tree entries name that the repository already held before it ran."""
    return {e.blob for scope in entries.values() for e in scope if e.blob in index}


def damaged_sample(
    reader: Any,
    index: Mapping[BlobId, Any],
    blobs: Iterable[BlobId],
    *,
    always: Iterable[BlobId] = (),
    per_pack: int = SAMPLE_PER_PACK,
    rng: random.Random | None = None,
) -> list[tuple[BlobId, str]]:
    """Read and re-hash up to ``per_pack`` of ``blobs`` in each pack, and every blob of ``always`` (the few trees
    a backup shares with an earlier one); the (blob, error) of those that fail."""
    from chalicelib.repository.errors import RepositoryError

    chooser = rng or random.Random()
    by_pack: dict[PackId, list[BlobId]] = {}
    for blob in blobs:
        entry = index.get(blob)
        if entry is not None:
            by_pack.setdefault(entry.pack, []).append(blob)
    sample: list[BlobId] = sorted({b for b in always if b in index})
    for _pack, ids in sorted(by_pack.items()):
        ids.sort()
        sample.extend(ids if len(ids) <= per_pack else chooser.sample(ids, per_pack))
    where = "a blob this backup deduplicates against"
    return [(b, str(r)) for b, r in reader.try_read_blobs(sample, where=where) if isinstance(r, RepositoryError)]
