"""Object-created events (S3 notifications through SQS, or EventBridge) and what repository object a key names."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

import orjson

from chalicelib.core.packs import is_hex_id
from chalicelib.replication.errors import InvalidEvent
from chalicelib.repository.errors import InvalidName
from chalicelib.repository.repo import CONFIG_KEY, INDEX_DIR, PACKS_DIR, Repository, check_name


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str  # the full S3 key, decoded
    size: int | None = None
    event_time: str | None = None


def parse_message(body: str | bytes) -> list[ObjectCreated]:
    """The object-created events of one queue message; [] for test events and other event types.

    S3 notifications URL-encode keys (form encoding: a space arrives as "+"); EventBridge events do not. S3 sends an
    ``s3:TestEvent`` when a notification is configured; it names no object.
    """
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"queue message is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidEvent("queue message is not a JSON object")
    if doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):  # delivered through SNS
        return parse_message(doc["Message"])
    if doc.get("Event") == "s3:TestEvent":
        return []
    if doc.get("source") == "aws.s3" and "detail" in doc:
        return _eventbridge(doc)
    records = doc.get("Records")
    if not isinstance(records, list):
        raise InvalidEvent("queue message is neither an S3 notification nor an EventBridge S3 event")
    out = []
    for record in records:
        try:
            if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
                continue
            s3 = record["s3"]
            key = unquote_plus(s3["object"]["key"])
            out.append(ObjectCreated(s3["bucket"]["name"], key, s3["object"].get("size"), record.get("eventTime")))
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidEvent(f"S3 notification record is malformed: missing {exc}") from exc
    return out


def _eventbridge(doc: dict[str, Any]) -> list[ObjectCreated]:
    if doc.get("detail-type") != "Object Created":
        return []
    try:
        detail = doc["detail"]
        obj = detail["object"]
        return [ObjectCreated(detail["bucket"]["name"], obj["key"], obj.get("size"), doc.get("time"))]
    except (KeyError, TypeError) as exc:
        raise InvalidEvent(f"EventBridge S3 event is malformed: missing {exc}") from exc


class ObjectKind(StrEnum):
    CONFIG = "config"
    PACK = "pack"
    INDEX = "index"
    MANIFEST = "manifest"
    ARTIFACT = "artifact"  # a large file of a backup (etcd snapshot, database dump), not packed
    OTHER = "other"


@dataclass(frozen=True)
class RepositoryObject:
    kind: ObjectKind
    key: str  # relative to the repository prefix
    content_id: str | None = None  # packs and index files: the SHA-256 (hex) their bytes must have
    cluster: str | None = None
    backup_id: str | None = None


def classify(key: str) -> RepositoryObject:
    """What a key (relative to the repository prefix) is in format v1."""
    if key == CONFIG_KEY:
        return RepositoryObject(ObjectKind.CONFIG, key)
    parts = key.split("/")
    if key.startswith(PACKS_DIR) and len(parts) == 3 and is_hex_id(parts[2]) and parts[1] == parts[2][:2]:
        return RepositoryObject(ObjectKind.PACK, key, content_id=parts[2])
    if key.startswith(INDEX_DIR) and len(parts) == 2 and is_hex_id(parts[1]):
        return RepositoryObject(ObjectKind.INDEX, key, content_id=parts[1])
    backup = Repository.parse_manifest_key(key)
    if backup is not None and _valid_names(*backup):
        return RepositoryObject(ObjectKind.MANIFEST, key, cluster=backup[0], backup_id=backup[1])
    artifact = Repository.parse_artifact_key(key)
    if artifact is not None and _valid_names(*artifact[:2]):
        return RepositoryObject(ObjectKind.ARTIFACT, key, cluster=artifact[0], backup_id=artifact[1])
    return RepositoryObject(ObjectKind.OTHER, key)


def _valid_names(cluster: str, backup_id: str) -> bool:
    try:
        check_name(cluster, "cluster name")
        check_name(backup_id, "backup id")
    except InvalidName:
        return False  # not a key the repository writes ("..", stray characters): nothing to replicate
    return True
