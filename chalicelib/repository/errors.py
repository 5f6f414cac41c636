"""Errors of the backup repository: storage failures, format problems and broken invariants."""

from __future__ import annotations


class RepositoryError(Exception):
    """Base class for errors of the backup repository."""


class StorageError(RepositoryError):
    """An object store operation failed."""

    def __init__(self, message: str, *, operation: str = "", bucket: str = "", key: str = "") -> None:
        super().__init__(message)
        self.operation = operation
        self.bucket = bucket
        self.key = key


class BucketNotFound(StorageError):
    """The bucket does not exist."""


class ObjectNotFound(StorageError):
    """The key does not exist."""


class AccessDenied(StorageError):
    """The store refused the operation (IAM policy, bucket policy, KMS key policy)."""


class ObjectExists(StorageError):
    """A create-only put found the key already written."""


class RepositoryNotFound(RepositoryError):
    """There is no repository (no config.json) under the prefix."""


class UnsupportedFormat(RepositoryError):
    """The repository, manifest or pack uses a format version or option this code does not know."""


class RepositoryCorrupt(RepositoryError):
    """A stored file (config, index, pack header, tree, manifest) does not follow the format or its name."""


class InvalidName(RepositoryError):
    """A cluster name or backup id cannot be used as part of a key."""


class WriterStateError(RepositoryError):
    """A writer method was called out of order (add after finish, manifest before finish, ...)."""


class BlobIdMismatch(RepositoryError):
    """A blob handed to the writer does not hash to the id it was given."""


class ManifestExists(RepositoryError):
    """A manifest for this cluster and backup id is already written; manifests are never overwritten."""


class ManifestIncomplete(RepositoryError):
    """A manifest does not name the index files its backup wrote, so replication could not follow it."""


class BackupNotFound(RepositoryError):
    """No manifest exists for this cluster and backup id."""


class BlobMissing(RepositoryError):
    """A blob is not in the index, or its pack is gone."""

    def __init__(self, message: str, *, blob_id: str, where: str | None = None) -> None:
        super().__init__(message)
        self.blob_id = blob_id
        self.where = where


class BlobCorrupt(RepositoryError):
    """A blob does not decompress, or its bytes do not hash to its id."""

    def __init__(self, message: str, *, blob_id: str, where: str | None = None) -> None:
        super().__init__(message)
        self.blob_id = blob_id
        self.where = where


class ExportError(RepositoryError):
    """An export could not be written safely (path outside the target, existing file)."""
