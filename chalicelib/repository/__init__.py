"""The backup repository on S3 (format v1): content-addressed blobs in packs, index files, manifests.

``docs/repository-format.md`` is the format's specification; this package reads and writes it.
"""

from __future__ import annotations

from chalicelib.repository.check import CheckReport, Problem, check_repository
from chalicelib.repository.export import ExportReport, export_backup
from chalicelib.repository.reader import RebuiltIndex, RepositoryReader
from chalicelib.repository.repo import Repository, RepositoryConfig
from chalicelib.repository.store import DEFAULT_PREFIX, MemoryObjectStore, ObjectStore, S3ObjectStore
from chalicelib.repository.writer import RepositoryWriter, WriteStats

__all__ = [
    "DEFAULT_PREFIX",
    "CheckReport",
    "ExportReport",
    "MemoryObjectStore",
    "ObjectStore",
    "Problem",
    "RebuiltIndex",
    "Repository",
    "RepositoryConfig",
    "RepositoryReader",
    "RepositoryWriter",
    "S3ObjectStore",
    "WriteStats",
    "check_repository",
    "export_backup",
]
