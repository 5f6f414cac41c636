from __future__ import annotations

import orjson
import pytest
import zstandard

from chalicelib.backup.sharded.shard import deadline, time_budget
from chalicelib.core.errors import FormatError
from chalicelib.core.jobs import BackupJob, CommitMessage, InvalidJob, ShardMessage, parse_message
from chalicelib.core.resources import Resource
from chalicelib.core.shards import (
    Checkpoint,
    ShardPlan,
    ShardResult,
    group_namespaces,
    merge_errors,
    namespaces_per_item,
    scope_segment,
)
from chalicelib.core.trees import TreeEntry
from chalicelib.kube.errors import Gone
from chalicelib.kube.paging import iter_pages

CM = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"list", "get"}))
DEPLOY = Resource("apps", "v1", "Deployment", "deployments", True, frozenset({"list"}))
AUTH = {"type": "kubeconfig", "kubeconfig": "x"}


def _entry(name: str) -> TreeEntry:
    return TreeEntry("", "configmaps", name, "v1", "ConfigMap", "ab" * 32, 12)


def test_checkpoint_round_trip_keeps_entries_in_order_and_tokens():
    cp = Checkpoint(
        scope="shop",
        seq=3,
        done=frozenset({"secrets"}),
        tokens={"configmaps": "tok=="},
        entries={"configmaps": [("shop", _entry("b")), ("shop", _entry("a"))]},
        refs={"persistentvolumes": ("pv-1",)},
        errors=({"resource": "roles.rbac.authorization.k8s.io", "error": "403"},),
        index_files=("1" * 64,),
        stats={"blobs_new": 2, "bytes_raw": 24},
        position=1,
    )
    back = Checkpoint.decode(cp.encode())
    assert back == cp
    assert back.objects == 2 and [e.name for _, e in back.entries["configmaps"]] == ["b", "a"]


def test_checkpoint_refuses_unknown_versions_and_damage():
    doc = orjson.loads(zstandard.ZstdDecompressor().decompress(Checkpoint(scope="", seq=0).encode()))
    doc["v"] = 2
    with pytest.raises(FormatError, match="version 2"):
        Checkpoint.decode(zstandard.ZstdCompressor().compress(orjson.dumps(doc)))
    with pytest.raises(FormatError):
        Checkpoint.decode(b"not zstd")


def test_plan_and_result_round_trip():
    plan = ShardPlan(
        mode="auto",
        scope={"include_namespaces": ["shop*"]},
        namespaced=(CM, DEPLOY),
        cluster_types=(),
        kubernetes_version="v1.31.0",
        started_at="2026-11-22T10:15:00Z",
        seed_key="checkpoints/c/b/_cluster/00000000-ab",
        namespaces=2,
        index_files=("2" * 64,),
        estimate=42,
        per_item=3,
    )
    assert ShardPlan.from_dict(orjson.loads(orjson.dumps(plan.to_dict()))) == plan
    refs = {"storageclasses.storage.k8s.io": ("gp3",)}
    result = ShardResult(trees={"shop": "3" * 64}, objects=0, kinds={}, index_files=(), refs=refs)
    assert ShardResult.from_dict(orjson.loads(orjson.dumps(result.to_dict()))) == result
    with pytest.raises(FormatError):
        ShardPlan.from_dict({"mode": "auto"})


def test_work_items_hold_whole_namespaces_sized_by_the_estimate():
    # 200 namespaces of ~500 objects: 5 % of 100,000 objects (fewer than 25,000) is 10 namespaces per item.
    assert namespaces_per_item(200, 100_000, target_objects=25_000, share=0.05) == 10
    assert namespaces_per_item(200, 10_000_000, target_objects=25_000, share=0.05) == 1  # never less than one
    assert namespaces_per_item(3, 30, target_objects=25_000, share=0.05) == 1
    assert namespaces_per_item(3, 0, target_objects=25_000, share=0.05) == 3  # nothing to list: one item
    assert namespaces_per_item(3, None, target_objects=25_000, share=0.05) == 1
    assert group_namespaces(["c", "a", "e", "b", "d"], 2) == [("a", "b"), ("c", "d"), ("e",)]
    assert group_namespaces([], 2) == []


def test_errors_of_a_work_item_name_their_own_namespace():
    merged = merge_errors([("a", [{"resource": "secrets", "error": "forbidden", "namespace": "b"}])])
    assert merged == [{"resource": "secrets", "error": "forbidden", "namespaces": "b"}]


def test_errors_merge_to_one_entry_per_type_naming_the_namespaces():
    merged = merge_errors(
        [
            ("", [{"resource": "metrics.k8s.io", "error": "discovery failed"}]),
            ("b", [{"resource": "secrets", "error": "forbidden b"}]),
            ("a", [{"resource": "secrets", "error": "forbidden a"}]),
        ]
    )
    assert merged == [
        {"resource": "metrics.k8s.io", "error": "discovery failed"},
        {"resource": "secrets", "error": "forbidden b", "namespaces": "a, b"},
    ]


def test_queue_messages_parse_by_type():
    job = parse_message({"job_id": "j", "cluster": {"name": "c", "auth": AUTH}, "shard": True})
    assert isinstance(job, BackupJob) and job.shard is True
    assert BackupJob.from_dict(job.to_dict()).shard is True
    assert "shard" not in BackupJob.from_dict({"job_id": "j", "cluster": {"name": "c", "auth": AUTH}}).to_dict()
    shard = parse_message({"type": "shard", "cluster": {"name": "c", "auth": AUTH}, "backup": "b1", "namespace": ""})
    assert shard == ShardMessage(job.cluster, "b1", "")
    assert parse_message(shard.to_dict()) == shard
    commit = CommitMessage(job.cluster, "b1")
    assert parse_message(commit.to_dict()) == commit
    for bad in (
        {"type": "shard", "cluster": {"name": "c", "auth": AUTH}, "backup": "b1"},
        {"type": "commit", "cluster": {"name": "c", "auth": AUTH}, "backup": ""},
        {"type": "teleport"},
        {"job_id": "j", "cluster": {"name": "c", "auth": AUTH}, "shard": "yes"},
    ):
        with pytest.raises(InvalidJob):
            parse_message(bad)


def test_scope_segments_never_collide_with_namespaces():
    assert scope_segment("") == "_cluster" and scope_segment("shop") == "shop"


def test_deadline_keeps_a_margin_proportionate_to_the_time_given():
    left = {"ms": 900_000}
    out = deadline(lambda: left["ms"], 60_000)
    assert not out()
    left["ms"] = 61_000
    assert not out()
    left["ms"] = 60_000
    assert out()
    short = {"ms": 10_000}
    out = deadline(lambda: short["ms"], 60_000)  # a 10 s invocation stops with 2 s left, not at once
    assert not out()
    short["ms"] = 2_000
    assert out()
    assert not deadline(None, 60_000)()
    now = {"t": 100.0}
    budget = time_budget(1.5, clock=lambda: now["t"])
    now["t"] = 101.0
    assert budget() == 500


def test_a_list_resumes_from_a_token_and_restarts_when_it_expired():
    calls = []

    def get(path, params):
        calls.append(params.get("continue"))
        if params.get("continue") == "old":
            raise Gone("expired")
        start = int(params.get("continue") or 0)
        items = [{"metadata": {"name": str(i)}} for i in range(start, min(start + 2, 5))]
        more = start + 2 < 5
        return {
            "kind": "ConfigMapList",
            "apiVersion": "v1",
            "items": items,
            "metadata": {"continue": str(start + 2) if more else None},
        }

    pages = list(iter_pages(get, "/api/v1/configmaps", limit=2, continue_token="2"))
    assert [[i["metadata"]["name"] for i in p.items] for p in pages] == [["2", "3"], ["4"]]
    assert [p.continue_token for p in pages] == ["4", None] and not any(p.restarted for p in pages)
    calls.clear()
    pages = list(iter_pages(get, "/api/v1/configmaps", limit=2, continue_token="old"))
    assert calls == ["old", None, "2", "4"]
    assert pages[0].restarted and [len(p.items) for p in pages] == [2, 2, 1]


def test_plan_keeps_its_post_hooks_field_for_field_through_the_catalog_encoding():
    from chalicelib.catalog.dynamo import decode_item, encode
    from chalicelib.core.hooks import ANNOTATION, EXEC, FAIL, WEBHOOK, Hook

    hooks = (
        Hook(EXEC, FAIL, 2.5, namespace="db", pod="db-0", container="pg", command=("sync",), source=ANNOTATION),
        Hook(WEBHOOK, "continue", 10.0, url="https://hooks.example/thaw?t=1"),
    )
    plan = ShardPlan(
        mode="auto",
        scope={},
        namespaced=(CM,),
        cluster_types=(),
        kubernetes_version="v1.31.0",
        started_at="2026-11-22T10:15:00Z",
        seed_key="k",
        namespaces=1,
        post_hooks=hooks,
    )
    stored = decode_item({"plan": encode(plan.to_dict())})["plan"]
    back = ShardPlan.from_dict(stored)
    assert back.post_hooks == hooks
    assert "post_hooks" not in ShardPlan.from_dict(plan.to_dict() | {"post_hooks": []}).to_dict()
    with pytest.raises(FormatError, match="shard plan is malformed"):
        ShardPlan.from_dict({**plan.to_dict(), "post_hooks": [{"kind": "exec", "shell": "x"}]})
