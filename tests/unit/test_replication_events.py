"""Parsing object-created events (S3 notifications, EventBridge, SNS-wrapped) and classifying repository keys."""

from __future__ import annotations

import json

import pytest

from chalicelib.replication.errors import InvalidEvent
from chalicelib.replication.events import ObjectCreated, ObjectKind, classify, parse_message

PACK = "ab" + "c" * 62
INDEX = "0" * 64


def s3_record(key: str, name: str = "ObjectCreated:Put", bucket: str = "primary") -> dict:
    return {
        "eventName": name,
        "eventTime": "2026-11-22T10:00:00.000Z",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 42}},
    }


def test_notification_keys_are_url_decoded() -> None:
    body = json.dumps({"Records": [s3_record("lifeboat/v1/clusters/prod%3Aeu+1/backups/b%40x/manifest.json")]})
    assert parse_message(body) == [
        ObjectCreated(
            "primary", "lifeboat/v1/clusters/prod:eu 1/backups/b@x/manifest.json", 42, "2026-11-22T10:00:00.000Z"
        )
    ]


def test_test_events_and_other_event_types_name_no_object() -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "primary"}
    removed = {
        "Records": [s3_record("lifeboat/v1/index/x", name="ObjectRemoved:Delete"), s3_record("lifeboat/v1/config.json")]
    }
    assert parse_message(json.dumps(test_event)) == []
    assert [e.key for e in parse_message(json.dumps(removed))] == ["lifeboat/v1/config.json"]


def test_eventbridge_keys_are_taken_as_they_are_and_sns_envelopes_are_opened() -> None:
    event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "time": "2026-11-22T10:00:00Z",
        "detail": {"bucket": {"name": "primary"}, "object": {"key": "lifeboat/v1/a+b", "size": 1}},
    }
    wrapped = {"Type": "Notification", "Message": json.dumps({"Records": [s3_record("lifeboat/v1/a%2Bb")]})}
    assert parse_message(json.dumps(event))[0].key == "lifeboat/v1/a+b"
    assert parse_message(json.dumps(wrapped))[0].key == "lifeboat/v1/a+b"
    assert parse_message(json.dumps({**event, "detail-type": "Object Deleted"})) == []


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        json.dumps({"hello": "world"}),
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
    ],
)
def test_malformed_messages_are_invalid(body: str) -> None:
    with pytest.raises(InvalidEvent):
        parse_message(body)


@pytest.mark.parametrize(
    ("key", "kind", "content_id", "backup"),
    [
        ("config.json", ObjectKind.CONFIG, None, None),
        (f"packs/ab/{PACK}", ObjectKind.PACK, PACK, None),
        (f"packs/cd/{PACK}", ObjectKind.OTHER, None, None),  # wrong fan-out directory
        (f"index/{INDEX}", ObjectKind.INDEX, INDEX, None),
        ("index/not-hex", ObjectKind.OTHER, None, None),
        ("clusters/prod/backups/b1/manifest.json", ObjectKind.MANIFEST, None, ("prod", "b1")),
        ("clusters/prod/backups/b1/etcd.db", ObjectKind.ARTIFACT, None, ("prod", "b1")),
        ("clusters/prod/backups/../manifest.json", ObjectKind.OTHER, None, None),
        ("clusters/prod/other/b1/manifest.json", ObjectKind.OTHER, None, None),
        ("stray.txt", ObjectKind.OTHER, None, None),
    ],
)
def test_classify(key: str, kind: ObjectKind, content_id: str | None, backup: tuple[str, str] | None) -> None:
    obj = classify(key)
    assert (obj.kind, obj.content_id) == (kind, content_id)
    assert ((obj.cluster, obj.backup_id) if backup else (None, None)) == (backup or (None, None))
