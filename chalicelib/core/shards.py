"""Sharded backups as values: the plan, shard states, a scope's checkpoint, a shard's result.

A backup too large for one invocation is split into work items of whole namespaces (sized by the objects they are
estimated to hold) plus one shard for cluster-scoped objects (scope ""). An item is named by its first namespace and
still gives one tree per namespace. Shards run in any order and any number of invocations; the commit step joins
their trees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import orjson
import zstandard

from chalicelib.core.errors import FormatError
from chalicelib.core.hooks import Hook
from chalicelib.core.ids import BlobId
from chalicelib.core.resources import Resource
from chalicelib.core.trees import CLUSTER_SCOPE, TreeEntry

CHECKPOINT_VERSION = 1
# Namespace names are DNS labels, so this key segment can never be a namespace's.
CLUSTER_SEGMENT = "_cluster"
# A checkpoint holds the tree entries gathered so far (~100 bytes each); far larger than any namespace means damage.
MAX_CHECKPOINT_BYTES = 1 << 30


class ShardState(StrEnum):
    PENDING = "Pending"  # waiting for a worker: new, checkpointed, or retrying after a failed attempt
    RUNNING = "Running"  # a worker owns it and keeps its heartbeat fresh
    DONE = "Done"
    FAILED = "Failed"  # out of attempts: the backup fails


SHARD_TERMINAL = frozenset({ShardState.DONE, ShardState.FAILED})

# target -> states it may be reached from. Running -> Running is a takeover, allowed only on a stale heartbeat.
SHARD_SOURCES: dict[ShardState, frozenset[ShardState]] = {
    ShardState.RUNNING: frozenset({ShardState.PENDING, ShardState.RUNNING}),
    ShardState.PENDING: frozenset({ShardState.RUNNING}),
    ShardState.DONE: frozenset({ShardState.RUNNING}),
    ShardState.FAILED: frozenset({ShardState.PENDING, ShardState.RUNNING}),
}


def scope_segment(namespace: str) -> str:
    """The key segment of a shard: its namespace, or ``_cluster`` for cluster-scoped objects."""
    return CLUSTER_SEGMENT if namespace == CLUSTER_SCOPE else namespace


def group_namespaces(namespaces: Iterable[str], per_item: int) -> list[tuple[str, ...]]:
    """The work items of a plan: the sorted namespaces in runs of ``per_item`` (a namespace is never split)."""
    names = sorted(namespaces)
    size = max(1, per_item)
    return [tuple(names[i : i + size]) for i in range(0, len(names), size)]


def namespaces_per_item(namespaces: int, estimate: int | None, *, target_objects: int, share: float) -> int:
    """How many namespaces one work item gets: about ``target_objects`` objects, or ``share`` of the estimate when
    that is smaller, taking every namespace to hold the average (per-namespace counts would cost a list each)."""
    if namespaces <= 0 or estimate is None:
        return 1
    if estimate <= 0:
        return namespaces  # nothing to list: one item does it
    target = min(float(target_objects), share * estimate)
    return max(1, min(namespaces, int(target * namespaces // estimate)))


def kind_key(group: str, kind: str) -> str:
    """How manifests count objects: ``group/Kind``, or ``Kind`` for the core group."""
    return f"{group}/{kind}" if group else kind


def resource_to_row(res: Resource) -> list[Any]:
    return [res.group, res.version, res.kind, res.plural, res.namespaced, sorted(res.verbs)]


def resource_from_row(row: Any) -> Resource:
    try:
        group, version, kind, plural, namespaced, verbs = row
    except (TypeError, ValueError) as exc:
        raise FormatError(f"not a resource row: {row!r:.120}") from exc
    return Resource(str(group), str(version), str(kind), str(plural), bool(namespaced), frozenset(verbs))


@dataclass(frozen=True)
class ShardPlan:
    """What the coordinator decided; every shard and the commit step read it (it never changes)."""

    mode: str  # effective cluster-scoped mode: on, off or auto
    scope: dict[str, Any]
    namespaced: tuple[Resource, ...]  # listed in each namespace: the selected types that had objects at plan time
    cluster_types: tuple[Resource, ...]  # listed by the cluster shard, referring types first
    kubernetes_version: str
    started_at: str
    seed_key: str  # checkpoint the cluster shard starts from: the Namespace objects, already stored
    namespaces: int  # namespaces in the backup
    index_files: tuple[str, ...] = ()  # written by the coordinator (the Namespace objects)
    errors: tuple[dict[str, str], ...] = ()  # discovery failures
    estimate: int | None = None  # objects in the selected types, cluster-wide, at plan time
    page_size: int = 500
    per_item: int = 1  # namespaces per work item (``group_namespaces``)
    volumes: dict[str, Any] = field(default_factory=dict)  # the job's volume settings, when it takes snapshots
    dumps: list[dict[str, Any]] = field(default_factory=list)  # the job's database dumps, taken before the commit
    cluster_uid: str | None = None  # the cluster's identity (kube-system's uid), for the manifest
    # The post hooks planned with the pre hooks (the policy's and the pods' Velero ones): the join runs them.
    post_hooks: tuple[Hook, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "scope": self.scope,
            "namespaced": [resource_to_row(r) for r in self.namespaced],
            "cluster_types": [resource_to_row(r) for r in self.cluster_types],
            "kubernetes_version": self.kubernetes_version,
            "started_at": self.started_at,
            "seed_key": self.seed_key,
            "namespaces": self.namespaces,
            "index_files": list(self.index_files),
            "errors": [dict(e) for e in self.errors],
            "estimate": self.estimate,
            "page_size": self.page_size,
            "per_item": self.per_item,
            **({"volumes": dict(self.volumes)} if self.volumes else {}),
            **({"dumps": list(self.dumps)} if self.dumps else {}),
            **({"cluster_uid": self.cluster_uid} if self.cluster_uid else {}),
            **({"post_hooks": [hook_to_row(h) for h in self.post_hooks]} if self.post_hooks else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardPlan:
        try:
            return cls(
                mode=str(data["mode"]),
                scope=dict(data["scope"]),
                namespaced=tuple(resource_from_row(r) for r in data["namespaced"]),
                cluster_types=tuple(resource_from_row(r) for r in data["cluster_types"]),
                kubernetes_version=str(data["kubernetes_version"]),
                started_at=str(data["started_at"]),
                seed_key=str(data["seed_key"]),
                namespaces=int(data["namespaces"]),
                index_files=tuple(data.get("index_files") or ()),
                errors=tuple(dict(e) for e in data.get("errors") or ()),
                estimate=data.get("estimate"),
                page_size=int(data.get("page_size") or 500),
                per_item=int(data.get("per_item") or 1),
                volumes=dict(data.get("volumes") or {}),
                dumps=list(data.get("dumps") or []),
                cluster_uid=str(data["cluster_uid"]) if data.get("cluster_uid") else None,
                post_hooks=tuple(hook_from_row(h) for h in data.get("post_hooks") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"shard plan is malformed: {exc}") from exc


def hook_to_row(hook: Hook) -> dict[str, Any]:
    """A planned hook as the plan stores it: every field, so a Velero annotation's hook comes back as it was."""
    return {**asdict(hook), "command": list(hook.command)}


def hook_from_row(row: Mapping[str, Any]) -> Hook:
    """The hook ``hook_to_row`` stored (TypeError on a field this version does not know: the plan is malformed)."""
    fields = dict(row)
    return Hook(**{**fields, "timeout_s": float(fields["timeout_s"]), "command": tuple(fields.get("command") or ())})


EntryRows = dict[str, list[tuple[str, TreeEntry]]]  # group_resource -> (scope, entry), in listing order


@dataclass(frozen=True)
class Checkpoint:
    """A shard's collection stopped between pages: enough to go on in another invocation.

    ``position`` is the namespace of the work item being listed (its index in the item; earlier ones are complete),
    and ``done``, ``tokens`` are about that namespace (or the cluster-scoped objects): ``done`` types are complete;
    ``tokens`` continue the types in progress; any other type starts from scratch.
    ``entries`` and ``refs`` are what the finished pages gave; ``index_files`` hold every blob they name.
    """

    scope: str
    seq: int
    done: frozenset[str] = frozenset()
    tokens: Mapping[str, str] = field(default_factory=dict)
    entries: EntryRows = field(default_factory=dict)
    refs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group_resource -> referenced names
    namespaces: tuple[str, ...] = ()  # the backup's namespaces (cluster shard only: references need them)
    errors: tuple[dict[str, str], ...] = ()
    index_files: tuple[str, ...] = ()
    stats: Mapping[str, int] = field(default_factory=dict)
    position: int = 0

    @property
    def objects(self) -> int:
        return sum(len(rows) for rows in self.entries.values())

    def encode(self) -> bytes:
        doc = {
            "v": CHECKPOINT_VERSION,
            "scope": self.scope,
            "seq": self.seq,
            "done": sorted(self.done),
            "tokens": dict(sorted(self.tokens.items())),
            "entries": {gr: [[s, *e.to_list()] for s, e in rows] for gr, rows in sorted(self.entries.items())},
            "refs": {gr: sorted(names) for gr, names in sorted(self.refs.items())},
            "namespaces": list(self.namespaces),
            "errors": [dict(e) for e in self.errors],
            "index_files": list(self.index_files),
            "stats": dict(self.stats),
            "position": self.position,
        }
        return bytes(zstandard.ZstdCompressor(level=3).compress(orjson.dumps(doc)))

    @classmethod
    def decode(cls, data: bytes) -> Checkpoint:
        try:
            raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_CHECKPOINT_BYTES)
            doc = orjson.loads(raw)
        except (zstandard.ZstdError, orjson.JSONDecodeError) as exc:
            raise FormatError(f"checkpoint does not decode: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("v") != CHECKPOINT_VERSION:
            raise FormatError(f"checkpoint version {doc.get('v') if isinstance(doc, dict) else None!r} is unknown")
        try:
            entries: EntryRows = {
                gr: [(str(row[0]), TreeEntry.from_list(row[1:])) for row in rows] for gr, rows in doc["entries"].items()
            }
            return cls(
                scope=str(doc["scope"]),
                seq=int(doc["seq"]),
                done=frozenset(doc["done"]),
                tokens=dict(doc["tokens"]),
                entries=entries,
                refs={gr: tuple(names) for gr, names in doc["refs"].items()},
                namespaces=tuple(doc["namespaces"]),
                errors=tuple(dict(e) for e in doc["errors"]),
                index_files=tuple(doc["index_files"]),
                stats={k: int(v) for k, v in doc["stats"].items()},
                position=int(doc.get("position") or 0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"checkpoint is malformed: {exc}") from exc


@dataclass(frozen=True)
class ShardResult:
    """What a finished shard hands to the commit step."""

    trees: Mapping[str, BlobId]  # scope -> tree; a scope with no object has none, as in a one-shot backup
    objects: int
    kinds: Mapping[str, int]
    index_files: tuple[str, ...]
    errors: tuple[dict[str, str], ...] = ()
    stats: Mapping[str, int] = field(default_factory=dict)
    refs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # auto mode: what the item refers to
    refs_key: str | None = None  # where ``refs`` are stored instead, when they are too large for the record

    def to_dict(self) -> dict[str, Any]:
        return {
            "trees": [[scope, tree] for scope, tree in sorted(self.trees.items())],  # "" is no key for a map
            "objects": self.objects,
            "kinds": dict(self.kinds),
            "index_files": list(self.index_files),
            "errors": [dict(e) for e in self.errors],
            "stats": dict(self.stats),
            "refs": {gr: list(names) for gr, names in self.refs.items()},
            "refs_key": self.refs_key,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardResult:
        try:
            return cls(
                trees={str(scope): BlobId(tree) for scope, tree in data.get("trees") or ()},
                objects=int(data["objects"]),
                kinds={str(k): int(v) for k, v in (data.get("kinds") or {}).items()},
                index_files=tuple(data.get("index_files") or ()),
                errors=tuple(dict(e) for e in data.get("errors") or ()),
                stats={str(k): int(v) for k, v in (data.get("stats") or {}).items()},
                refs={str(gr): tuple(names) for gr, names in (data.get("refs") or {}).items()},
                refs_key=data.get("refs_key") or None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"shard result is malformed: {exc}") from exc


@dataclass(frozen=True)
class ShardRecord:
    """The catalog's view of one shard."""

    namespace: str  # the item's key, its first namespace; "" for the cluster-scoped objects
    state: ShardState
    index: int | None = None  # work items: position in the plan, counted once in the backup's shards_done
    run_id: str | None = None  # the invocation that owns it while Running
    runs: int = 0  # invocations that claimed it (one more per checkpoint)
    failures: int = 0  # attempts that failed
    heartbeat_at: str | None = None
    checkpoint: Mapping[str, Any] | None = None  # the latest checkpoint: key, seq, objects, index_files
    result: ShardResult | None = None
    error: str | None = None  # the last failure
    namespaces: tuple[str, ...] = ()  # the item's namespaces, in listing order (none for the cluster shard)


def merge_errors(by_scope: Iterable[tuple[str, Iterable[Mapping[str, str]]]]) -> list[dict[str, str]]:
    """One entry per failed resource type, as a one-shot backup reports it, naming the namespaces it failed in."""
    merged: dict[str, dict[str, str]] = {}
    scopes: dict[str, list[str]] = {}
    for shard_scope, errors in by_scope:
        for error in errors:
            scope = str(error.get("namespace", shard_scope))  # a work item names the namespace of each failure
            resource = str(error.get("resource", ""))
            if resource not in merged:
                merged[resource] = {"resource": resource, "error": str(error.get("error", ""))}
            if scope and scope not in scopes.setdefault(resource, []):
                scopes[resource].append(scope)
    for resource, names in scopes.items():
        shown = ", ".join(sorted(names)[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        merged[resource]["namespaces"] = shown
    return [merged[r] for r in sorted(merged)]


def add_stats(total: dict[str, int], more: Mapping[str, int]) -> dict[str, int]:
    for key, value in more.items():
        total[key] = total.get(key, 0) + int(value)
    return total
