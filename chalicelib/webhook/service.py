"""The restore webhook's use cases: submit a signed restore request, read a restore's status, page backups."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.catalog.backups import BackupCatalog
from chalicelib.catalog.dynamo import iso
from chalicelib.catalog.errors import CatalogError, InvalidToken, RecordNotFound
from chalicelib.catalog.restore_records import IdempotencyKeyReused, RestoreRecord
from chalicelib.catalog.restores import RestoreCatalog
from chalicelib.core.models import BackupRecord, BackupState
from chalicelib.core.restore_jobs import RestoreState
from chalicelib.observability import logger
from chalicelib.restore.errors import MessagingUnavailable
from chalicelib.restore.queue import RestoreQueue
from chalicelib.webhook.errors import (
    BackupNotFound,
    BackupNotRestorable,
    IdempotencyConflict,
    MalformedRequest,
    RestoreNotFound,
    ServiceUnavailable,
    Unauthorized,
    WebhookError,
)
from chalicelib.webhook.models import RESTORE_ID_PATTERN, RestoreRequest, new_restore_id, parse_request
from chalicelib.webhook.signature import HEADER, SignatureVerifier

RESTORABLE = frozenset({BackupState.COMPLETED, BackupState.PARTIALLY_FAILED})
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255
MAX_PAGE = 100
DEFAULT_PAGE = 20
# How far back "latest of a policy" looks: policies share a cluster's backups, so their newest may be pages away.
POLICY_SCAN_PAGES = 10


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer without any web framework in it: app.py turns it into a Chalice Response."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class RestoreRequestService:
    """verify -> parse -> resolve the backup -> idempotent job record -> queue message -> 202."""

    def __init__(
        self,
        verifier: SignatureVerifier,
        backups: BackupCatalog,
        restores: RestoreCatalog,
        queue: RestoreQueue,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._verifier = verifier
        self._backups = backups
        self._restores = restores
        self._queue = queue
        self._clock = clock

    # -- routes ---------------------------------------------------------------------------------------------------

    def submit(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        return _answer(lambda: self._submit(body or b"", _lower(headers)))

    def status(self, restore_id: str, headers: Mapping[str, str], identity: Mapping[str, Any] | None = None) -> Reply:
        return _answer(lambda: self._status(restore_id, _lower(headers), identity))

    def backups(
        self, params: Mapping[str, str] | None, headers: Mapping[str, str], identity: Mapping[str, Any] | None = None
    ) -> Reply:
        return _answer(lambda: self._list_backups(dict(params or {}), _lower(headers), identity))

    # -- use cases ------------------------------------------------------------------------------------------------

    def _submit(self, body: bytes, headers: dict[str, str]) -> Reply:
        signature = self._verifier.verify(headers.get(HEADER.lower()), body)
        request = parse_request(body)
        idem_key = headers.get(IDEMPOTENCY_HEADER.lower()) or signature
        if len(idem_key) > MAX_IDEMPOTENCY_KEY:
            raise MalformedRequest(f"{IDEMPOTENCY_HEADER} is longer than {MAX_IDEMPOTENCY_KEY} characters")
        backup = self._resolve(request)
        now = self._clock()
        restore_id = new_restore_id(now)
        record = RestoreRecord(
            restore_id=restore_id,
            state=RestoreState.PENDING,
            backup_cluster=backup.cluster,
            backup_id=backup.backup_id,
            target_cluster=request.target_cluster.to_ref().to_dict(),
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

    def _status(self, restore_id: str, headers: dict[str, str], identity: Mapping[str, Any] | None) -> Reply:
        self._authorize_read(headers, identity)
        if not RESTORE_ID_PATTERN.match(restore_id):
            raise RestoreNotFound(f"restore {restore_id!r} not found")
        try:
            record = self._restores.get(restore_id)
        except RecordNotFound as exc:
            raise RestoreNotFound(f"restore {restore_id} not found") from exc
        return Reply(200, status_view(record))

    def _list_backups(
        self, params: dict[str, str], headers: dict[str, str], identity: Mapping[str, Any] | None
    ) -> Reply:
        self._authorize_read(headers, identity)
        cluster = params.get("cluster")
        if not cluster:
            raise MalformedRequest("query parameter 'cluster' is required")
        try:
            limit = int(params.get("limit") or DEFAULT_PAGE)
        except ValueError as exc:
            raise MalformedRequest("limit must be an integer") from exc
        if not 1 <= limit <= MAX_PAGE:
            raise MalformedRequest(f"limit must be between 1 and {MAX_PAGE}")
        try:
            records, next_token = self._backups.list(cluster, limit=limit, next_token=params.get("next_token") or None)
        except InvalidToken as exc:
            raise MalformedRequest(str(exc)) from exc
        return Reply(200, {"cluster": cluster, "backups": [backup_view(r) for r in records], "next_token": next_token})

    # -- helpers --------------------------------------------------------------------------------------------------

    def _authorize_read(self, headers: dict[str, str], identity: Mapping[str, Any] | None) -> None:
        # API Gateway fills identity.userArn only after it verified a SigV4 (IAM) signature; without an IAM
        # authorizer on the route it is null, so it cannot be supplied by a client.
        if identity and identity.get("userArn"):
            return
        self._verifier.verify(headers.get(HEADER.lower()), b"")

    def _resolve(self, request: RestoreRequest) -> BackupRecord:
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
            found = self._backups.latest(cluster)
        else:
            token: str | None = None
            for _page in range(POLICY_SCAN_PAGES):
                records, token = self._backups.list(cluster, limit=MAX_PAGE, next_token=token, states=RESTORABLE)
                found = next((r for r in records if r.policy == policy), None)
                if found is not None or token is None:
                    break
        if found is None:
            of_policy = f" (policy {policy})" if policy else ""
            raise BackupNotFound(f"no restorable backup of cluster {cluster}{of_policy}", cluster=cluster)
        return found


def _answer(action: Callable[[], Reply]) -> Reply:
    try:
        return action()
    except WebhookError as exc:
        if isinstance(exc, Unauthorized):
            # The reason helps whoever debugs a client; it goes to the log, never the header values.
            logger().warning("webhook request refused", extra={"reason": exc.message})
            return Reply(exc.status, {"error": exc.code, "message": "invalid or missing signature"})
        return Reply(exc.status, exc.body())
    except CatalogError as exc:
        logger().exception("catalog unavailable")
        error = ServiceUnavailable(f"catalog unavailable: {type(exc).__name__}")
        return Reply(error.status, error.body(), {"Retry-After": "5"})


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


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


def backup_view(record: BackupRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    view = {k: data[k] for k in ("cluster", "backup_id", "policy", "parent", "created_at", "started_at", "finished_at")}
    return {**view, "state": str(record.state), "counts": data["counts"], "stats": data["stats"]}
