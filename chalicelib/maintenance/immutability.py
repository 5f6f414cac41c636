"""Deleting garbage from a bucket with versioning and Object Lock (immutability mode).

On a versioned bucket a plain DeleteObject only adds a delete marker: the data stays as a noncurrent version, and
Object Lock never refuses that. So garbage collection asks the bucket how it is set up, once per run:

- no default retention (plain or versioned bucket): plain deletes, as before. On a versioned bucket the noncurrent
  versions are the undo window, removed by the bucket's lifecycle rule (``NoncurrentVersionExpiration``);
- default retention (``GOVERNANCE`` or ``COMPLIANCE``, N days): every version of every garbage key is listed in one
  batched ListObjectVersions walk of the prefixes involved (1,000 versions per request, no HEAD per object). A
  version's retain-until date is its LastModified plus the bucket's default period, which is what S3 stamped on it
  (the repository never sets a per-object retention). A key with a version still retained is left alone entirely
  and reported as retained until the latest such date; a later run deletes it. A key whose versions have all
  expired is deleted version by version, delete markers included, so nothing is left to pay for. Governance
  retention is never bypassed.

If S3 still refuses a version whose computed date has passed (someone extended its retention), one HEAD of that
version reads the real date, and the key is reported as retained until then. A key whose current version is a
delete marker is not listed by ListObjectsV2, so it is already gone for the reachability walk and the sweep.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

from chalicelib.repository.errors import AccessDenied, ObjectNotFound, StorageError
from chalicelib.repository.store import ObjectStore, S3ObjectStore


class DefaultRetention(NamedTuple):
    mode: str  # GOVERNANCE | COMPLIANCE
    period: timedelta


class Version(NamedTuple):
    key: str  # relative to the store's prefix
    version_id: str
    last_modified: datetime
    delete_marker: bool


@dataclass
class Sweep:
    deleted: list[str] = field(default_factory=list)
    retained: dict[str, datetime] = field(default_factory=dict)  # key -> retained until
    refused: list[str] = field(default_factory=list)  # denied for another reason (policy): retried next time
    versions_deleted: int = 0  # object versions and delete markers removed for good

    def add(self, other: Sweep) -> list[str]:
        """Fold ``other`` into this one; its deleted keys."""
        self.deleted += other.deleted
        self.retained.update(other.retained)
        self.refused += other.refused
        self.versions_deleted += other.versions_deleted
        return other.deleted


def default_retention(store: ObjectStore) -> DefaultRetention | None:
    """The bucket's default Object Lock retention, or None (not an S3 store, no Object Lock, or no default)."""
    if not isinstance(store, S3ObjectStore):
        return None
    try:
        resp = store._call(
            "get_object_lock_configuration",
            "",
            store._s3.get_object_lock_configuration,
            Bucket=store.bucket,
        )
    except AccessDenied:
        return None  # not allowed to ask: plain deletes, which Object Lock never refuses (delete markers)
    except StorageError as exc:
        if "ObjectLockConfigurationNotFound" in str(exc):
            return None
        raise
    config = resp.get("ObjectLockConfiguration", {})
    rule = config.get("Rule", {}).get("DefaultRetention")
    if config.get("ObjectLockEnabled") != "Enabled" or not rule:
        return None
    days = int(rule.get("Days") or 0) + 365 * int(rule.get("Years") or 0)
    return DefaultRetention(str(rule["Mode"]), timedelta(days=days)) if days else None


def list_versions(store: S3ObjectStore, prefix: str) -> Iterator[Version]:
    """Every version and delete marker under ``prefix``, one ListObjectVersions request per 1,000."""
    cut = len(store.prefix)
    params: dict[str, Any] = {"Bucket": store.bucket, "Prefix": store.prefix + prefix}
    while True:
        page = store._call("list_versions", prefix, store._s3.list_object_versions, **params)
        for listed, marker in (("Versions", False), ("DeleteMarkers", True)):
            for item in page.get(listed, []):
                yield Version(item["Key"][cut:], item["VersionId"], item["LastModified"], marker)
        if not page.get("IsTruncated"):
            return
        params["KeyMarker"] = page.get("NextKeyMarker")
        params["VersionIdMarker"] = page.get("NextVersionIdMarker")


def sweep(
    store: ObjectStore,
    keys: list[str],
    *,
    now: datetime,
    threads: int = 8,
    retention: DefaultRetention | None | Literal["ask"] = "ask",
    dry_run: bool = False,
) -> Sweep:
    """Delete ``keys`` as far as the bucket's Object Lock allows (see the module docstring); ``retention`` is the
    bucket's default retention when the caller already read it (``default_retention``). A dry run deletes nothing
    and says what would be deleted and what is still retained."""
    out = Sweep()
    if not keys:
        return out
    if retention == "ask":
        retention = default_retention(store)
    if dry_run and (retention is None or not isinstance(store, S3ObjectStore)):
        out.deleted = list(keys)
        return out
    if retention is None or not isinstance(store, S3ObjectStore):
        deleted, out.refused = _parallel(lambda key: _plain(store, key), keys, threads)
        out.deleted = [k for k, ok in zip(keys, deleted, strict=True) if ok]
        return out

    versions = _versions_of(store, keys)
    to_delete: list[str] = []
    for key in keys:
        found = versions.get(key, [])
        until = max((v.last_modified + retention.period for v in found if not v.delete_marker), default=None)
        if until is not None and until > now:
            out.retained[key] = until
        elif found:
            to_delete.append(key)
    if dry_run:
        out.deleted = to_delete
        return out
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(lambda key: _delete_versions(store, versions[key]), to_delete))
    for key, (gone, until) in zip(to_delete, results, strict=True):
        out.versions_deleted += gone
        if until is not None and until > now:
            out.retained[key] = until
        elif until is not None or gone < len(versions[key]):
            out.refused.append(key)
        else:
            out.deleted.append(key)
    return out


def _versions_of(store: S3ObjectStore, keys: list[str]) -> dict[str, list[Version]]:
    """The versions of ``keys``, from one batched listing of each top-level directory they are in."""
    wanted = set(keys)
    versions: dict[str, list[Version]] = {}
    for prefix in _prefixes(keys):
        for version in list_versions(store, prefix):
            if version.key in wanted:
                versions.setdefault(version.key, []).append(version)
    return versions


def _delete_versions(store: S3ObjectStore, versions: list[Version]) -> tuple[int, datetime | None]:
    """Delete every version (delete markers last); (how many went, the retain-until of one S3 refused)."""
    gone = 0
    for version in sorted(versions, key=lambda v: v.delete_marker):
        try:
            store._call(
                "delete_version",
                version.key,
                store._s3.delete_object,
                Bucket=store.bucket,
                Key=store.prefix + version.key,
                VersionId=version.version_id,
            )
        except AccessDenied:
            return gone, _retain_until(store, version)
        except ObjectNotFound:
            pass
        gone += 1
    return gone, None


def _retain_until(store: S3ObjectStore, version: Version) -> datetime | None:
    """The real retain-until date of a version S3 refused to delete (one HEAD); None when it has none or unknown."""
    if version.delete_marker:
        return None
    try:
        head = store._call(
            "head_version",
            version.key,
            store._s3.head_object,
            Bucket=store.bucket,
            Key=store.prefix + version.key,
            VersionId=version.version_id,
        )
    except StorageError:
        return None
    until = head.get("ObjectLockRetainUntilDate")
    return until if isinstance(until, datetime) else None


def _prefixes(keys: Iterable[str]) -> list[str]:
    """The top-level directories holding ``keys`` (``packs/``, ``index/``, ``clusters/``): one listing each."""
    return sorted({key.split("/", 1)[0] + "/" if "/" in key else key for key in keys})


def _plain(store: ObjectStore, key: str) -> bool:
    try:
        store.delete(key)
    except AccessDenied:
        return False
    return True


def _parallel(fn: Any, keys: list[str], threads: int) -> tuple[list[bool], list[str]]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(fn, keys))
    return results, [k for k, ok in zip(keys, results, strict=True) if not ok]
