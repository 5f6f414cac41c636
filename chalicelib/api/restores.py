"""``/v1/restores``: submit a signed restore request (an idempotent job on the restore queue), read its status.

A client restores only from clusters its grant lets it ``restore_from`` and only into registered clusters it may
``restore_into``; the job names the target by its registration, and the worker resolves its credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib.api.auth import authenticate, require
from chalicelib.api.backups import MAX_PAGE
from chalicelib.api.errors import (
    BackupNotFound,
    BackupNotRestorable,
    IdempotencyConflict,
    InvalidRequest,
    MalformedRequest,
    RestoreNotFound,
    ServiceUnavailable,
)
from chalicelib.api.grants import Action, Caller
from chalicelib.api.models import RESTORE_ID_PATTERN, RestoreRequest, new_restore_id, parse_request
from chalicelib.api.responses import Reply, answer
from chalicelib.api.signature import IDEMPOTENCY_HEADER, SignatureVerifier, SignedRequest
from chalicelib.backup.etcd_only import resource_parent
from chalicelib.catalog.backups import BackupCatalog
from chalicelib.catalog.clusters import ClusterCatalog
from chalicelib.catalog.dynamo import iso
from chalicelib.catalog.errors import RecordNotFound
from chalicelib.catalog.restore_records import IdempotencyKeyReused, RestoreRecord
from chalicelib.catalog.restores import RestoreCatalog
from chalicelib.core.models import BackupRecord, BackupState
from chalicelib.core.restore_jobs import RestoreState
from chalicelib.observability import logger
from chalicelib.restore.errors import MessagingUnavailable
from chalicelib.restore.queue import RestoreQueue

RESTORABLE = frozenset({BackupState.COMPLETED, BackupState.PARTIALLY_FAILED})
MAX_IDEMPOTENCY_KEY = 255
# How far back "latest of a policy" looks: policies share a cluster's backups, so their newest may be pages away.
POLICY_SCAN_PAGES = 10
REFUSED = "webhook request refused"  # logged, with the reason, when a signature is refused


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RestoreApi:
    """verify -> parse -> grant and registration -> resolve the backup -> idempotent job record -> queue -> 202."""

    def __init__(
        self,
        verifier: SignatureVerifier,
        backups: BackupCatalog,
        restores: RestoreCatalog,
        queue: RestoreQueue,
        clusters: ClusterCatalog,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._verifier = verifier
        self._backups = backups
        self._clusters = clusters
        self._restores = restores
        self._queue = queue
        self._clock = clock

    # -- routes ---------------------------------------------------------------------------------------------------

    def submit(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        return answer(lambda: self._submit(body or b"", headers), refused=REFUSED)

    def status(self, restore_id: str, headers: Mapping[str, str]) -> Reply:
        return answer(lambda: self._status(restore_id, headers), refused=REFUSED)

    # -- use cases ------------------------------------------------------------------------------------------------

    def _submit(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        signed = SignedRequest.of("POST", "/v1/restores", None, headers, body)
        if len(signed.idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise MalformedRequest(f"{IDEMPOTENCY_HEADER} is longer than {MAX_IDEMPOTENCY_KEY} characters")
        # The idempotency key is signed, and the job it names is created once: an exact resend may pass.
        verified = authenticate(self._verifier, headers, signed, resend_ok=True)
        caller = verified.caller
        request = parse_request(body)
        idem_key = signed.idempotency_key or verified.signature
        require(caller, Action.RESTORE_INTO, request.target_cluster)
        source_cluster = request.source.cluster if request.source is not None else request.cluster
        if source_cluster is not None:
            require(caller, Action.RESTORE_FROM, source_cluster)
        self._registered(request.target_cluster)
        backup = self._resolve(request, caller)
        now = self._clock()
        restore_id = new_restore_id(now)
        record = RestoreRecord(
            restore_id=restore_id,
            state=RestoreState.PENDING,
            backup_cluster=backup.cluster,
            backup_id=backup.backup_id,
            target_cluster={"name": request.target_cluster},
            options=request.options.to_options(restore_id=restore_id, dry_run=request.dry_run).to_dict(),
            dry_run=request.dry_run,
            created_at=iso(now),
        )
        try:
            record, created = self._restores.create(
                record, idem_key=idem_key, request_hash=request.fingerprint(), now=now
            )
        except IdempotencyKeyReused as exc:
            raise IdempotencyConflict("idempotency key reused with a different request") from exc
        log = logger()
        if record.enqueued_at is None:
            # First delivery, or a retry of a request whose queue send failed: (re)send; the worker claims once.
            try:
                self._queue.send(record.restore_id)
            except MessagingUnavailable as exc:
                raise ServiceUnavailable(str(exc)) from exc
            self._restores.mark_enqueued(record.restore_id, self._clock())
        log.info(
            "restore requested" if created else "restore request replayed (idempotency key)",
            extra={"restore_id": record.restore_id, "backup_id": record.backup_id, "dry_run": record.dry_run},
        )
        status_url = f"/v1/restores/{record.restore_id}"
        headers_out = {"Location": status_url}
        if not created:
            headers_out["Idempotent-Replayed"] = "true"
        body_out = {"restore_id": record.restore_id, "status_url": status_url, "state": RestoreState.PENDING.value}
        return Reply(202, body_out, headers_out)

    def _status(self, restore_id: str, headers: Mapping[str, str]) -> Reply:
        signed = SignedRequest.of("GET", f"/v1/restores/{restore_id}", None, headers)
        caller = authenticate(self._verifier, headers, signed).caller
        if not RESTORE_ID_PATTERN.match(restore_id):
            raise RestoreNotFound(f"restore {restore_id!r} not found")
        try:
            record = self._restores.get(restore_id)
        except RecordNotFound as exc:
            raise RestoreNotFound(f"restore {restore_id} not found") from exc
        if not visible(caller, record):
            # Not 403: whether a restore of clusters outside the grant exists is not the caller's business.
            raise RestoreNotFound(f"restore {restore_id} not found")
        return Reply(200, status_view(record))

    # -- helpers --------------------------------------------------------------------------------------------------

    def _registered(self, cluster: str) -> None:
        try:
            self._clusters.get(cluster)
        except RecordNotFound as exc:
            errors = [{"loc": ["target_cluster"], "msg": f"cluster {cluster!r} is not registered", "type": "unknown"}]
            raise InvalidRequest("invalid restore request", errors=errors) from exc

    def _resolve(self, request: RestoreRequest, caller: Caller) -> BackupRecord:
        backup: BackupRecord
        if request.backup_id is not None:
            try:
                if request.cluster is not None:
                    backup = self._backups.get(request.cluster, request.backup_id)
                else:
                    backup = self._backups.find(request.backup_id)
            except RecordNotFound as exc:
                where = f"{request.cluster}/" if request.cluster else ""
                raise BackupNotFound(
                    f"backup {where}{request.backup_id} not found", backup_id=request.backup_id
                ) from exc
            if request.cluster is None:
                # A bare id names its cluster only once resolved; the grant is checked before anything is recorded.
                require(caller, Action.RESTORE_FROM, backup.cluster)
        else:
            assert request.source is not None  # the model requires one of the two
            backup = self._latest(request.source.cluster, request.source.policy)
        if backup.state not in RESTORABLE:
            raise BackupNotRestorable(
                f"backup {backup.cluster}/{backup.backup_id} is {backup.state}; only Completed or PartiallyFailed "
                "backups can be restored",
                backup_id=backup.backup_id,
                state=str(backup.state),
            )
        return backup

    def _latest(self, cluster: str, policy: str | None) -> BackupRecord:
        found: BackupRecord | None = None
        if policy is None:
            found = resource_parent(self._backups, cluster)  # an etcd-only backup holds nothing to restore here
        else:
            token: str | None = None
            for _page in range(POLICY_SCAN_PAGES):
                records, token = self._backups.list(cluster, limit=MAX_PAGE, next_token=token, states=RESTORABLE)
                found = next((r for r in records if r.policy == policy and not r.etcd_only), None)
                if found is not None or token is None:
                    break
        if found is None:
            of_policy = f" (policy {policy})" if policy else ""
            raise BackupNotFound(f"no restorable backup of cluster {cluster}{of_policy}", cluster=cluster)
        return found


def visible(caller: Caller, record: RestoreRecord) -> bool:
    """A restore the caller could have started: from a cluster it may restore from, into one it may restore into."""
    target = str(record.target_cluster.get("name") or "")
    return caller.may(Action.RESTORE_FROM, record.backup_cluster) and caller.may(Action.RESTORE_INTO, target)


def status_view(record: RestoreRecord) -> dict[str, Any]:
    """What GET /v1/restores/{id} shows; the target's auth block (secret ids, role names) stays private."""
    options = {k: v for k, v in record.options.items() if k not in ("restore_id", "dry_run")}
    view: dict[str, Any] = {
        "restore_id": record.restore_id,
        "state": str(record.state),
        "dry_run": record.dry_run,
        "backup": {"cluster": record.backup_cluster, "backup_id": record.backup_id},
        "target_cluster": record.target_cluster.get("name"),
        "options": options,
        "progress": {"done": record.done, "total": record.total},
        "counts": dict(record.counts),
        "failures": list(record.failures),
        "failures_total": record.failures_total,
        "failure": record.failure,
        "warnings": list(record.warnings),
        "timings": timings(record),
    }
    if record.plan is not None:
        view["plan"] = record.plan
    return view


def timings(record: RestoreRecord) -> dict[str, Any]:
    duration_ms: int | None = None
    if record.started_at and record.finished_at:
        started = datetime.fromisoformat(record.started_at.replace("Z", "+00:00"))
        finished = datetime.fromisoformat(record.finished_at.replace("Z", "+00:00"))
        duration_ms = int((finished - started).total_seconds() * 1000)
    return {
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration_ms": duration_ms,
    }
