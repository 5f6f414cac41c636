"""One shard of a sharded backup: claim it, list its scope page by page, and finish, checkpoint or retry."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.backup.items import ItemCollector
from chalicelib.backup.listing import ListFailure, PageStream
from chalicelib.backup.sharded.context import (
    BackupContext,
    BackupContexts,
    NextStep,
    ShardingOptions,
    log,
    run_planned_post_hooks,
)
from chalicelib.catalog.errors import ShardConflict, StaleState
from chalicelib.core.jobs import ShardMessage
from chalicelib.core.models import BackupState
from chalicelib.core.references import ReferenceCollector
from chalicelib.core.resources import Resource
from chalicelib.core.scope import SERVER_EXCLUSIONS
from chalicelib.core.shards import Checkpoint, ShardRecord, ShardResult, ShardState, add_stats
from chalicelib.core.trees import CLUSTER_SCOPE
from chalicelib.retry import RetryLater, describe, is_transient

_COLLECTOR_STATS = ("bytes_raw", "bytes_deduplicated")


class ShardAttemptFailed(Exception):
    """A type could not be listed for a reason that may pass (5xx, 429, connection): try the shard again."""


def deadline(remaining_ms: Callable[[], int] | None, margin_ms: int) -> Callable[[], bool]:
    """Whether an invocation is out of time: less than ``margin_ms`` left (a fifth of the time at start when that
    is shorter, so a short timeout still makes progress). Without ``remaining_ms`` time never runs out."""
    if remaining_ms is None:
        return lambda: False
    margin = min(margin_ms, int(remaining_ms()) // 5)
    return lambda: int(remaining_ms()) <= margin


def time_budget(seconds: float, clock: Callable[[], float] = time.monotonic) -> Callable[[], int]:
    """A ``remaining_ms`` for ``seconds`` from now (the CLI, tests and benchmarks; Lambda passes its context's)."""
    end = clock() + seconds
    return lambda: int((end - clock()) * 1000)


@dataclass
class _Scope:
    """What one shard lists and how."""

    types: list[Resource]
    namespaces: tuple[str, ...]
    selector: str
    workers: int
    refs: ReferenceCollector | None  # observes namespaced objects; decides cluster objects in auto mode
    keep_refs: bool  # auto mode: a work item hands its references to the cluster shard


@dataclass
class _Progress:
    """Where the listing of the current namespace of a shard stands."""

    done: set[str]
    tokens: dict[str, str]
    beat: float  # time.monotonic() of the last heartbeat
    worked: bool = False  # a page (or failure) was handled in this invocation


class ShardWorker:
    """Backs up one shard per message: as much of its scope as the invocation's time allows, then what comes next."""

    def __init__(
        self,
        catalog: Any,
        shards: Any,
        queue: Any,
        contexts: BackupContexts,
        next_step: NextStep,
        *,
        clock: Callable[[], datetime],
        options: ShardingOptions,
        list_workers: int,
        hooks: Any = None,
    ) -> None:
        """``hooks`` (a ``backup.hooks.HookRunner``) runs the plan's post hooks when a shard fails the backup."""
        self._catalog = catalog
        self._shards = shards
        self._queue = queue
        self._contexts = contexts
        self._next = next_step
        self._clock = clock
        self._options = options
        self._list_workers = list_workers
        self._hooks = hooks

    def run(self, msg: ShardMessage, remaining_ms: Callable[[], int] | None = None) -> dict[str, Any]:
        opts = self._options
        out_of_time = deadline(remaining_ms, opts.deadline_margin_ms)
        cluster, backup_id, namespace = msg.cluster.name, msg.backup_id, msg.namespace
        base = {"backup_id": backup_id, "namespace": namespace}
        context = self._contexts.context(cluster, backup_id)
        if context is None:
            return {"status": "rejected", "error": f"backup {cluster}/{backup_id} has no shard plan", **base}
        if not self._contexts.still_running(context, cluster, backup_id):
            return {"status": "stopped", **base}  # the backup failed (another shard): its other shards are moot
        if namespace == CLUSTER_SCOPE and (self._shards.remaining(cluster, backup_id) or 0) > 0:
            return {"status": "waiting", **base}  # the last namespace shard sends it again
        run_id = uuid.uuid4().hex
        now = self._clock()
        shard, claimed = self._shards.claim(
            cluster, backup_id, namespace, run_id, now=now, stale_before=now - timedelta(seconds=opts.stale_after_s)
        )
        if not claimed:
            return self._not_claimed(msg, shard, base)
        try:
            outcome = self._collect(context, msg, shard, run_id, out_of_time)
            if isinstance(outcome, Checkpoint):
                self._store_checkpoint(context, msg, run_id, outcome)
            else:
                self._shards.complete(cluster, backup_id, namespace, run_id, outcome, now=self._clock())
        except (ShardConflict, StaleState) as exc:
            log("shard no longer ours", error=str(exc), **base)
            return {"status": "lost", **base}
        except Exception as exc:  # noqa: BLE001 -- a failed attempt is recorded and retried with its checkpoint
            return self._attempt_failed(msg, shard, run_id, exc, base, context)
        # The shard's progress is stored. If sending what follows fails, the error returns this message to the
        # queue: its redelivery continues from the checkpoint, or finds the shard Done and sends the next step.
        if isinstance(outcome, Checkpoint):
            self._queue.send(msg.to_dict())
            log("shard checkpointed", seq=outcome.seq, objects=outcome.objects, **base)
            return {"status": "continued", "seq": outcome.seq, "objects": outcome.objects, **base}
        try:
            self._next.advance(msg.cluster, msg.backup_id, shard)
        except StaleState as exc:
            log("backup no longer running", error=str(exc), **base)
            return {"status": "lost", **base}
        return {"status": "Done", "objects": outcome.objects, **base}

    # -- outcomes -------------------------------------------------------------------------------------------------

    def _not_claimed(self, msg: ShardMessage, shard: ShardRecord, base: dict[str, Any]) -> dict[str, Any]:
        if shard.state == ShardState.DONE:
            # A duplicate, or a redelivery of a worker that died between "Done" and what follows: counting is
            # idempotent and sending the next step again is harmless.
            try:
                step = self._next.advance(msg.cluster, msg.backup_id, shard)
            except StaleState:
                return {"status": "duplicate", **base}
            return {"status": "duplicate", "next": step, **base}
        if shard.state == ShardState.FAILED:
            return {"status": "failed", **base}
        raise RetryLater(f"shard {msg.namespace or '(cluster-scoped)'} of {msg.backup_id} is being worked on")

    def _store_checkpoint(self, context: BackupContext, msg: ShardMessage, run_id: str, cp: Checkpoint) -> None:
        key = context.checkpoints.put(msg.cluster.name, msg.backup_id, cp, run_id)
        pointer = {"key": key, "seq": cp.seq, "objects": cp.objects, "index_files": list(cp.index_files)}
        self._shards.release(
            msg.cluster.name, msg.backup_id, msg.namespace, run_id, now=self._clock(), checkpoint=pointer
        )

    def _attempt_failed(
        self,
        msg: ShardMessage,
        shard: ShardRecord,
        run_id: str,
        exc: Exception,
        base: dict[str, Any],
        context: BackupContext,
    ) -> dict[str, Any]:
        opts = self._options
        cluster, backup_id = msg.cluster.name, msg.backup_id
        text = describe(exc)
        attempt = shard.failures + 1
        try:
            if attempt < opts.max_attempts:
                # The shard goes on from its last checkpoint; what this attempt packed is garbage for GC.
                self._shards.release(cluster, backup_id, msg.namespace, run_id, now=self._clock(), error=text)
                self._queue.send(msg.to_dict(), delay_s=opts.retry_delay_s * attempt)
                log("shard attempt failed; retrying", attempt=attempt, error=text, **base)
                return {"status": "retrying", "attempt": attempt, "error": text, **base}
            self._shards.fail(cluster, backup_id, msg.namespace, run_id, now=self._clock(), error=text)
            where = msg.namespace or "(cluster-scoped)"
            failure = f"shard {where} failed after {attempt} attempts: {text}"
            record = self._catalog.transition(
                cluster, backup_id, BackupState.FAILED, now=self._clock(), failure=failure[:2048]
            )
        except (ShardConflict, StaleState) as lost:
            log("shard no longer ours", error=str(lost), **base)
            return {"status": "lost", **base}
        # This shard's write failed the backup (a second failing shard finds it Failed already): its post hooks run.
        run_planned_post_hooks(self._hooks, self._catalog, self._contexts, context, msg.cluster, record, self._clock())
        log("shard failed; the backup failed", attempt=attempt, error=text, **base)
        return {"status": "Failed", "error": text, **base}

    # -- the work -------------------------------------------------------------------------------------------------

    def _collect(
        self,
        context: BackupContext,
        msg: ShardMessage,
        shard: ShardRecord,
        run_id: str,
        out_of_time: Callable[[], bool],
    ) -> Checkpoint | ShardResult:
        opts = self._options
        previous = context.checkpoints.get(shard.checkpoint["key"]) if shard.checkpoint else None
        work = self._scope(context, msg, shard, previous)
        writer = self._contexts.writer(context)
        collector = ItemCollector(context.scope, work.namespaces, writer)
        if previous is not None:
            collector.restore(previous)
        # A work item lists its namespaces one after the other; the cluster shard lists cluster-wide once.
        listed: tuple[str | None, ...] = work.namespaces if msg.namespace != CLUSTER_SCOPE else (None,)
        start = previous.position if previous else 0
        done = set(previous.done) if previous else set()
        tokens = dict(previous.tokens) if previous else {}
        client = self._contexts.client(context, msg.cluster)
        progress = _Progress(done, tokens, time.monotonic())
        stopped: int | None = None  # the position to go on from
        for position in range(start, len(listed)):
            if position > start:
                progress.done, progress.tokens = set(), {}
                if progress.worked and out_of_time():
                    stopped = position
                    break
            if self._list(
                context, msg, shard, run_id, work, collector, client, listed[position], progress, out_of_time
            ):
                stopped = position
                break
        done, tokens = progress.done, progress.tokens
        refs = _refs_of(work.refs) if work.keep_refs else {}
        if previous is not None and work.keep_refs:
            refs = _union(previous.refs, refs)
        if stopped is not None:
            index_files = (previous.index_files if previous else ()) + tuple(writer.finish())
            return Checkpoint(
                scope=msg.namespace,
                seq=(previous.seq if previous else 0) + 1,
                done=frozenset(done),
                tokens=tokens,
                entries=collector.entries,
                refs=refs,
                namespaces=previous.namespaces if previous else (),
                errors=tuple(collector.errors),
                index_files=index_files,
                stats=_stats(previous, writer, collector),
                position=stopped,
            )
        trees = collector.write_trees()
        if msg.namespace != CLUSTER_SCOPE:
            trees.pop(CLUSTER_SCOPE, None)
        else:
            trees = {CLUSTER_SCOPE: trees[CLUSTER_SCOPE]} if CLUSTER_SCOPE in trees else {}
        index_files = (previous.index_files if previous else ()) + tuple(writer.finish())
        refs_key = None
        if refs and msg.namespace and _size(refs) > opts.refs_inline_bytes:
            refs_key = context.checkpoints.put_refs(msg.cluster.name, msg.backup_id, msg.namespace, refs, run_id)
            refs = {}
        return ShardResult(
            trees=trees,
            objects=collector.objects,
            kinds=collector.kinds(),
            index_files=index_files,
            errors=tuple(collector.errors),
            stats=_stats(previous, writer, collector),
            refs=refs if msg.namespace else {},
            refs_key=refs_key,
        )

    def _list(
        self,
        context: BackupContext,
        msg: ShardMessage,
        shard: ShardRecord,
        run_id: str,
        work: _Scope,
        collector: ItemCollector,
        client: Any,
        namespace: str | None,
        progress: _Progress,
        out_of_time: Callable[[], bool],
    ) -> bool:
        """List one namespace (None: cluster-wide) from ``progress``; True when it stopped for lack of time."""
        opts = self._options
        done, tokens = progress.done, progress.tokens
        todo = [r for r in work.types if r.group_resource not in done]
        pages = PageStream(
            client,
            todo,
            work.selector,
            workers=work.workers,
            page_size=context.plan.page_size,
            namespace=namespace,
            start=tokens,
        )
        try:
            for item in pages:
                gr = item.resource.group_resource
                progress.worked = True
                if isinstance(item, ListFailure):
                    if is_transient(item.error) and shard.failures + 1 < opts.max_attempts:
                        raise ShardAttemptFailed(f"listing {gr} failed: {describe(item.error)}") from item.error
                    collector.fail(item.resource, item.error, namespace)
                    done.add(gr)
                    tokens.pop(gr, None)
                    continue
                collector.handle_page(item, work.refs, namespace)
                if item.continue_token:
                    tokens[gr] = item.continue_token
                else:
                    done.add(gr)
                    tokens.pop(gr, None)
                if time.monotonic() - progress.beat >= opts.heartbeat_every_s:
                    progress.beat = time.monotonic()
                    self._heartbeat(msg, run_id)
                if len(done) < len(work.types) and out_of_time():
                    return True
        finally:
            pages.close()
        return False

    def _scope(
        self, context: BackupContext, msg: ShardMessage, shard: ShardRecord, previous: Checkpoint | None
    ) -> _Scope:
        plan, scope = context.plan, context.scope
        auto = plan.mode == "auto"
        if msg.namespace != CLUSTER_SCOPE:
            namespaces = shard.namespaces or (msg.namespace,)
            observer = ReferenceCollector(frozenset(namespaces))
            workers = self._list_workers
            selector = scope.server_selector()
            return _Scope(list(plan.namespaced), namespaces, selector, workers, observer, keep_refs=auto)
        if previous is None:
            raise ShardConflict(f"the cluster shard of {msg.backup_id} has no starting checkpoint")
        namespaces = previous.namespaces
        refs: ReferenceCollector | None = None
        if auto:
            # Cluster objects in auto mode are those the namespaces refer to: every namespace shard is done by now.
            refs = ReferenceCollector(frozenset(namespaces))
            merged = _union(previous.refs, self._namespace_refs(context, msg))
            refs.wanted = {gr: set(names) for gr, names in merged.items()}
        selector = scope.server_selector() if plan.mode == "on" else SERVER_EXCLUSIONS
        # In auto mode the referring types must be read before the types they name, so list in order.
        workers = 1 if auto else self._list_workers
        return _Scope(list(plan.cluster_types), namespaces, selector, workers, refs, keep_refs=auto)

    def _namespace_refs(self, context: BackupContext, msg: ShardMessage) -> dict[str, tuple[str, ...]]:
        merged: dict[str, tuple[str, ...]] = {}
        for shard in self._shards.list_shards(msg.cluster.name, msg.backup_id):
            result = shard.result
            if not shard.namespace or result is None:
                continue
            refs = context.checkpoints.get_refs(result.refs_key) if result.refs_key else result.refs
            merged = _union(merged, refs)
        return merged

    def _heartbeat(self, msg: ShardMessage, run_id: str) -> None:
        self._shards.heartbeat(msg.cluster.name, msg.backup_id, msg.namespace, run_id, now=self._clock())
        self._catalog.heartbeat(msg.cluster.name, msg.backup_id, now=self._clock())


def _refs_of(refs: ReferenceCollector | None) -> dict[str, tuple[str, ...]]:
    if refs is None:
        return {}
    return {gr: tuple(sorted(names)) for gr, names in refs.wanted.items() if names}


def _union(*maps: Any) -> dict[str, tuple[str, ...]]:
    out: dict[str, set[str]] = {}
    for refs in maps:
        for gr, names in refs.items():
            out.setdefault(gr, set()).update(names)
    return {gr: tuple(sorted(names)) for gr, names in sorted(out.items())}


def _size(refs: dict[str, tuple[str, ...]]) -> int:
    return sum(len(gr) + sum(len(n) + 3 for n in names) for gr, names in refs.items())


def _stats(previous: Checkpoint | None, writer: Any, collector: ItemCollector) -> dict[str, int]:
    totals = {k: v for k, v in (previous.stats if previous else {}).items() if k not in _COLLECTOR_STATS}
    stats = add_stats(totals, dict(writer.stats))
    stats.update(bytes_raw=collector.bytes_raw, bytes_deduplicated=collector.bytes_dedup)
    return stats
