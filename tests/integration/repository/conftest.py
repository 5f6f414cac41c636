"""Fixtures of the repository tests: an S3 store in moto, a repository on it, and one backup written to it."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core.manifest import Manifest
from chalicelib.repository import Repository, RepositoryWriter, S3ObjectStore
from tests.support.repository import PREFIX, write_small_backup


@pytest.fixture
def store(s3: Any, bucket: str) -> S3ObjectStore:
    return S3ObjectStore(s3, bucket, prefix=PREFIX)


@pytest.fixture
def repo(store: S3ObjectStore) -> Repository:
    return Repository.open(store, create=True)


@pytest.fixture
def written(repo: Repository) -> tuple[Manifest, dict[str, Any]]:
    """One committed backup, spread over several small packs of several frames (trees are frames of their own)."""
    return write_small_backup(repo, RepositoryWriter(repo, pack_target_bytes=1200, frame_target_bytes=512))
