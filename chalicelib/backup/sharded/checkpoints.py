"""Checkpoint objects of sharded backups: write-once S3 objects under the repository prefix, outside its format.

``checkpoints/<cluster>/<backup id>/<namespace | _cluster>/<seq, 8 digits>-<run id>`` holds one ``Checkpoint``
(zstd JSON); ``.../refs-<run id>`` holds a namespace's references when they are too large for its catalog record.
A run id makes every key unique, so a retried invocation never needs to overwrite what a failed one wrote. Nothing
in the repository refers to these objects. Nothing deletes them yet (docs/repository-format.md §1, a known gap);
they are safe to delete once the backup is final.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import zstandard

from chalicelib.backup.errors import CheckpointError
from chalicelib.core.errors import FormatError
from chalicelib.core.shards import Checkpoint, scope_segment
from chalicelib.repository.errors import StorageError
from chalicelib.repository.repo import check_name
from chalicelib.repository.store import ObjectStore

CHECKPOINTS_DIR = "checkpoints/"
MAX_REFS_BYTES = 64 << 20


def backup_checkpoints_prefix(cluster: str, backup_id: str) -> str:
    return f"{CHECKPOINTS_DIR}{check_name(cluster, 'cluster name')}/{check_name(backup_id, 'backup id')}/"


class CheckpointStore:
    """Puts and gets checkpoint objects through the repository's object store (same bucket, prefix and key)."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def put(self, cluster: str, backup_id: str, checkpoint: Checkpoint, run_id: str) -> str:
        key = f"{self._scope_prefix(cluster, backup_id, checkpoint.scope)}{checkpoint.seq:08d}-{run_id}"
        self._put(key, checkpoint.encode())
        return key

    def get(self, key: str) -> Checkpoint:
        try:
            return Checkpoint.decode(self._get(key))
        except FormatError as exc:
            raise CheckpointError(f"checkpoint {key} is unreadable: {exc}") from exc

    def put_refs(
        self, cluster: str, backup_id: str, namespace: str, refs: Mapping[str, tuple[str, ...]], run_id: str
    ) -> str:
        key = f"{self._scope_prefix(cluster, backup_id, namespace)}refs-{run_id}"
        doc = {gr: sorted(names) for gr, names in sorted(refs.items())}
        self._put(key, zstandard.ZstdCompressor(level=3).compress(orjson.dumps(doc)))
        return key

    def get_refs(self, key: str) -> dict[str, tuple[str, ...]]:
        try:
            raw = zstandard.ZstdDecompressor().decompress(self._get(key), max_output_size=MAX_REFS_BYTES)
            return {str(gr): tuple(names) for gr, names in orjson.loads(raw).items()}
        except (zstandard.ZstdError, orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise CheckpointError(f"references at {key} are unreadable: {exc}") from exc

    @staticmethod
    def _scope_prefix(cluster: str, backup_id: str, namespace: str) -> str:
        return f"{backup_checkpoints_prefix(cluster, backup_id)}{scope_segment(namespace)}/"

    def _put(self, key: str, data: bytes) -> None:
        try:
            self._store.put(key, data, create_only=True)
        except StorageError as exc:
            raise CheckpointError(f"storing {key} failed: {exc}") from exc

    def _get(self, key: str) -> bytes:
        try:
            return self._store.get(key)
        except StorageError as exc:
            raise CheckpointError(f"reading {key} failed: {exc}") from exc
