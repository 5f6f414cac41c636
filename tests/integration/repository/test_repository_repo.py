"""The repository's config and manifests on S3 (moto): init and open, format versions, manifest names."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.repository import Repository, RepositoryReader, S3ObjectStore
from chalicelib.repository.errors import (
    BackupNotFound,
    InvalidName,
    ObjectNotFound,
    RepositoryCorrupt,
    RepositoryNotFound,
    UnsupportedFormat,
)
from tests.support.repository import CLUSTER, PREFIX, FailingStore, keys_under


def test_init_writes_config_and_open_reads_the_same_repository(s3: Any, bucket: str, store: S3ObjectStore) -> None:
    with pytest.raises(RepositoryNotFound):
        Repository.open(store)

    created = Repository.open(store, create=True)
    reopened = Repository.open(S3ObjectStore(s3, bucket, prefix=PREFIX))

    assert reopened.config == created.config
    assert created.config.version == 1 and created.config.compression == "zstd"
    assert len(created.config.id) == 32 and int(created.config.id, 16) >= 0
    assert created.config.created_at.endswith("Z")
    assert keys_under(s3, bucket) == ["config.json"]


def test_init_race_adopts_the_config_written_first(store: S3ObjectStore) -> None:
    first = Repository.open(store, create=True)

    class LateStore(FailingStore):
        """Reports config.json absent once, as if our get ran before the other process's put."""

        missed = False

        def get(self, key: str) -> bytes:
            if not self.missed:
                self.missed = True
                raise ObjectNotFound("simulated", key=key)
            return self.inner.get(key)

    second = Repository.open(LateStore(store, fail_under="\0"), create=True)

    assert second.config == first.config


def test_unknown_repository_version_is_refused_by_name(s3: Any, bucket: str, store: S3ObjectStore) -> None:
    s3.put_object(Bucket=bucket, Key=PREFIX + "config.json", Body=b'{"version": 2, "id": "x", "compression": "zstd"}')

    with pytest.raises(UnsupportedFormat, match="version 2"):
        Repository.open(store, create=True)


def test_unknown_manifest_version_is_refused(s3: Any, bucket: str, repo: Repository, written: Any) -> None:
    manifest, _ = written
    key = PREFIX + repo.manifest_key(CLUSTER, manifest.backup_id)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().replace(b'"format_version": 1', b'"format_version": 9')
    s3.put_object(Bucket=bucket, Key=key, Body=body)

    with pytest.raises(UnsupportedFormat, match="version 9"):
        RepositoryReader(repo).load_manifest(CLUSTER, manifest.backup_id)


def test_missing_backup_names_cluster_and_id(repo: Repository) -> None:
    with pytest.raises(BackupNotFound, match="nope") as info:
        RepositoryReader(repo).load_manifest(CLUSTER, "nope")
    assert CLUSTER in str(info.value)


def test_misplaced_manifest_is_corrupt(s3: Any, bucket: str, repo: Repository, written: Any) -> None:
    manifest, _ = written
    body = s3.get_object(Bucket=bucket, Key=PREFIX + repo.manifest_key(CLUSTER, manifest.backup_id))["Body"].read()
    s3.put_object(Bucket=bucket, Key=PREFIX + repo.manifest_key("other", manifest.backup_id), Body=body)

    with pytest.raises(RepositoryCorrupt, match="misplaced"):
        RepositoryReader(repo).load_manifest("other", manifest.backup_id)


@pytest.mark.parametrize("name", ["", "..", ".", "a/b", "x y", "-lead", "a\nb"])
def test_names_that_would_escape_their_key_are_refused(name: str) -> None:
    with pytest.raises(InvalidName):
        Repository.manifest_key(name, "b1")
    with pytest.raises(InvalidName):
        Repository.manifest_key("c", name)
