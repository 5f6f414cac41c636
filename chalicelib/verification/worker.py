"""The verification worker: one message is one run of a policy's verification, claimed once, recorded, announced.

A run is created Pending (``start``) by the dispatcher's job or ``lifeboat verify run``; a delivery claims it with
a token, removes what crashed runs left on the target cluster (``janitor.py``), restores the policy's newest
Completed backup that is not marked damaged into scratch namespaces (``run.py``), and records the result. A second
delivery of a run finds it claimed or ended and does nothing; a run whose worker died is taken over once its
heartbeat is older than the run's timeout.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.aws.events import announce
from chalicelib.catalog.errors import RecordNotFound
from chalicelib.catalog.verifications import FAILED, RUNNING, SUCCEEDED, VerificationCatalog, VerificationRecord
from chalicelib.core.events import VERIFICATION_FAILED, VERIFICATION_SUCCEEDED, verification_event
from chalicelib.core.models import BackupState
from chalicelib.core.verification import DEFAULT_SCRATCH_PREFIX, DEFAULT_TIMEOUT_S, VerifyPolicy
from chalicelib.observability import logger
from chalicelib.repository.errors import RepositoryError
from chalicelib.restore.service import RestoreService
from chalicelib.retry import describe
from chalicelib.verification import dumps as dump_kind
from chalicelib.verification.janitor import Janitor
from chalicelib.verification.messages import VerifyMessage as VerifyMessage
from chalicelib.verification.messages import verification_id as verification_id
from chalicelib.verification.results import Progress, VerificationResult
from chalicelib.verification.run import VerificationRun

INLINE_WAIT_S = 30.0
POLL_EVERY_S = 2.0
CONTINUE_AFTER_S = 30  # the delay of a continuation message (SQS allows up to 900)
EVENT_SUCCEEDED = VERIFICATION_SUCCEEDED
EVENT_FAILED = VERIFICATION_FAILED
# Kinds this worker proves today; the others are recorded as not verified, with the reason, never as passed.
_NOT_YET: dict[str, str] = {}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


class VerificationWorker:
    def __init__(
        self,
        *,
        verifications: VerificationCatalog,
        backups: Any,
        policies: Any,
        connect: Callable[[str], Any],
        reader: Callable[[], Any],
        events: Any | None = None,
        metrics: Callable[[VerificationRecord], None] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        queue: Any | None = None,
        inline_wait_s: float | None = INLINE_WAIT_S,
        sleep: Callable[[float], None] = time.sleep,
        replica_reader: Callable[[], Any] | None = None,
        replica_region: str | None = None,
        etcd_verifier: Callable[[], Any] | None = None,
        continue_after_s: int = CONTINUE_AFTER_S,
    ) -> None:
        self._replica_reader = replica_reader
        self._replica_region = replica_region
        self._etcd_verifier = etcd_verifier
        self._continue_after_s = continue_after_s
        self._monotonic = monotonic
        self._queue = queue
        # With a queue, a run polls readiness for at most this long per invocation, then checkpoints and continues
        # from a delayed message; without one (the CLI) it polls until the run ends.
        self._inline_wait_s = inline_wait_s if queue is not None else None
        self._sleep = sleep
        self._verifications = verifications
        self._backups = backups
        self._policies = policies
        self._connect = connect
        self._reader = reader
        self._events = events
        self._metrics = metrics
        self._clock = clock

    def start(self, policy_name: str, *, scheduled_for: str | None = None) -> tuple[VerificationRecord, bool]:
        """Create the Pending run of a policy's verification; (record, created) — False when it existed already."""
        record = self._policies.get(policy_name)
        block: VerifyPolicy | None = getattr(record.policy, "verify", None)
        policy = record.policy
        run = VerificationRecord(
            verification_id=verification_id(policy.name, scheduled_for),
            policy=policy.name,
            cluster=policy.cluster,
            target_cluster=(block.target_cluster if block else None) or policy.cluster,
            created_at=_iso(self._clock()),
            scheduled_for=scheduled_for or "",
            timeout_s=block.timeout_s if block else DEFAULT_TIMEOUT_S,
            rto_target_minutes=block.rto_target_minutes if block else None,
            kinds=list(block.kinds) if block else ["resources"],
        )
        created = self._verifications.create(run)
        return (run if created else self._verifications.get(run.verification_id)), created

    def handle_message(self, body: str) -> VerificationRecord | None:
        message = VerifyMessage.from_json(body)
        return self.handle(message.verification_id, token=message.token)

    def handle(self, run_id: str, *, token: str | None = None) -> VerificationRecord | None:
        """Run (or, with ``token``, continue) the verification ``run_id`` unless another worker holds it or it has
        ended; the ended record, or None when nothing ended here (held elsewhere, or waiting for a continuation)."""
        pending = self._verifications.get(run_id)
        if token is not None:
            if pending.state != RUNNING or pending.worker != token or not pending.progress:
                logger().info("verification continuation no longer current", extra={"verification_id": run_id})
                return None
            return self._continue(pending, token, None, Progress.from_dict(pending.progress))
        now = self._clock()
        token = uuid.uuid4().hex
        stale = _iso(now - timedelta(seconds=pending.timeout_s))
        claimed = self._verifications.claim(run_id, token, _iso(now), stale)
        if claimed is None:
            logger().info("verification already claimed or ended", extra={"verification_id": run_id})
            return None
        try:
            started = self._start(claimed, token)
        except Exception as exc:  # noqa: BLE001 - any failure ends the run as Failed with its cause, never silently
            logger().exception("verification failed", extra={"verification_id": run_id})
            return self._end(
                run_id, token, {"state": FAILED, "message": f"the verification could not run: {describe(exc)}"}
            )
        if isinstance(started, dict):
            return self._end(run_id, token, started)
        verifier, progress = started
        return self._continue(claimed, token, verifier, progress)

    def _continue(
        self, run: VerificationRecord, token: str, verifier: VerificationRun | None, progress: Progress
    ) -> VerificationRecord | None:
        try:
            if verifier is None:
                verifier = self._verifier(self._connect(run.target_cluster), run)
            began = self._monotonic()
            while progress.waiting:
                progress = verifier.poll(progress)
                if not progress.waiting:
                    break
                if self._inline_wait_s is not None and self._monotonic() - began >= self._inline_wait_s:
                    self._checkpoint(run, token, progress)
                    return None
                self._sleep(POLL_EVERY_S)
            result = verifier.finish(progress)
        except Exception as exc:  # noqa: BLE001 - any failure ends the run as Failed with its cause, never silently
            logger().exception("verification failed", extra={"verification_id": run.verification_id})
            fields = {"state": FAILED, "message": f"the verification could not run: {describe(exc)}"}
            return self._end(run.verification_id, token, fields)
        return self._end(run.verification_id, token, self._fields(run, result))

    def _checkpoint(self, run: VerificationRecord, token: str, progress: Progress) -> None:
        held = self._verifications.checkpoint(run.verification_id, token, progress.to_dict(), _iso(self._clock()))
        if held is not None and self._queue is not None:
            self._queue.send(VerifyMessage(run.verification_id, token).to_json(), delay_s=self._continue_after_s)

    def _end(self, run_id: str, token: str, result: dict[str, Any]) -> VerificationRecord | None:
        result["finished_at"] = _iso(self._clock())
        done = self._verifications.finish(run_id, token, result)
        if done is not None:
            self._announce(done)
        return done

    def _reader_for(self, run: VerificationRecord) -> Any:
        """The replica region's repository for the ``replica`` kind (as a disaster would leave it), else the primary."""
        if "replica" in run.kinds and self._replica_reader is not None:
            return self._replica_reader()
        return self._reader()

    def _verifier(self, client: Any, run: VerificationRecord) -> VerificationRun:
        reader = self._reader_for(run)
        return VerificationRun(
            reader, client, RestoreService(reader, client), clock=self._clock, monotonic=self._monotonic
        )

    def _start(self, run: VerificationRecord, token: str) -> dict[str, Any] | tuple[VerificationRun, Progress]:
        """The run restored and compared, or the fields of a run that ended before it could restore."""
        policy_record = self._policies.get(run.policy)
        block: VerifyPolicy | None = getattr(policy_record.policy, "verify", None)
        replica = "replica" in run.kinds
        if replica and (self._replica_reader is None or not self._replica_region):
            return {
                "state": FAILED,
                "message": "kind replica asks for the replica region's copy, but none is configured",
            }
        backup = self._newest_backup(run.cluster, run.policy, self._replica_region if replica else None)
        if backup is None:
            copy = f" replicated to {self._replica_region}" if replica else ""
            return {"state": FAILED, "message": f"policy {run.policy!r} has no Completed backup{copy} to verify"}
        client = self._connect(run.target_cluster)
        janitor = Janitor(client, clock=self._clock)
        janitor.sweep(older_than_s=run.timeout_s, keep=run.verification_id)
        janitor.sweep_run(run.verification_id)  # a crashed delivery of this same run
        verifier = self._verifier(client, run)
        try:
            manifest = self._reader_for(run).load_manifest(backup.cluster, backup.backup_id)
        except RepositoryError as exc:
            return {
                "state": FAILED,
                "backup_id": backup.backup_id,
                "message": f"backup {backup.cluster}/{backup.backup_id} cannot be read: {exc}",
            }
        progress = verifier.start(
            manifest,
            run.verification_id,
            scratch_prefix=block.scratch_prefix if block else DEFAULT_SCRATCH_PREFIX,
            checks=block.checks if block else (),
            timeout_s=run.timeout_s,
            scratch_id=f"{run.verification_id}-{token[:4]}",
            dumps=tuple(getattr(policy_record.policy, "dumps", ()) or ()) if "dumps" in run.kinds else None,
        )
        return verifier, progress

    def _fields(self, run: VerificationRecord, result: VerificationResult) -> dict[str, Any]:
        out = result.to_dict()
        for name in ("verification_id", "cluster", "started_at", "finished_at", "ready"):
            out.pop(name, None)
        out["cleanup"] = result.cleanup.to_dict()
        outcomes, failures = self._kind_outcomes(run, result)
        out["outcomes"] = outcomes
        out["dumps"] = dump_kind.recorded(result.dumps)
        if failures:
            out["state"] = FAILED
            out["rto_s"] = None
            out["problems"] = [*out.get("problems", []), *failures]
        not_verified = [f"{kind} {text}" for kind, text in outcomes.items() if text.startswith("not verified")]
        out["message"] = "; ".join(
            [m for m in (out.get("message"),) if m] + [f["problem"] for f in failures] + not_verified
        )
        target = run.rto_target_minutes
        rto = out.get("rto_s")
        out["rto_exceeded"] = bool(target is not None and rto is not None and rto > target * 60)
        return out

    def _kind_outcomes(
        self, run: VerificationRecord, result: VerificationResult
    ) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Per kind the policy asked for: verified (with what), not verified (and why), or failed; never silent."""
        outcomes: dict[str, str] = {}
        failures: list[dict[str, Any]] = []
        readiness_checked = "readiness" in result.checks
        for kind in run.kinds:
            if kind in ("resources", "replica"):
                where = f" from the replica region {self._replica_region}" if kind == "replica" else ""
                outcomes[kind] = (
                    f"verified: {result.checked} objects restored{where} and read back"
                    if result.state == SUCCEEDED
                    else f"failed: {len(result.problems)} problems"
                )
            elif kind == "volumes":
                outcomes[kind] = (
                    f"verified: {result.ready.get('persistentvolumeclaims', 0)} restored claims bound"
                    if readiness_checked
                    else "not verified: no kube-controller-manager runs on the target cluster, so no claim binds"
                )
            elif kind == "dumps":
                outcomes[kind], problems = dump_kind.outcome(result.dumps, result.backup_id)
                failures += [{"key": "dumps", "problem": p} for p in problems]
            elif kind == "etcd":
                outcomes[kind], failure = self._etcd(result)
                if failure:
                    failures.append({"key": "etcd", "problem": failure})
            else:
                outcomes[kind] = f"not verified: {_NOT_YET.get(kind, 'not supported by this version')}"
        return outcomes, failures

    def _etcd(self, result: VerificationResult) -> tuple[str, str]:
        """(outcome, failure) of the etcd issue's restore test on the backup's etcd snapshot."""
        from chalicelib.etcd.errors import EtcdError

        manifest = self._reader().load_manifest(result.cluster, result.backup_id)
        if manifest.etcd_snapshot is None:
            return f"not verified: backup {result.backup_id} holds no etcd snapshot", ""
        if self._etcd_verifier is None:
            return "not verified: the etcd binaries are not part of this deployment", ""
        try:
            record = self._etcd_verifier().verify(manifest)
        except EtcdError as exc:
            return f"not verified: {exc}", ""
        if record.ok:
            return f"verified: {record.keys} keys at revision {record.revision} read back from a restore", ""
        return (
            f"failed: {record.error}",
            f"the etcd snapshot of backup {result.backup_id} did not restore: {record.error}",
        )

    def _newest_backup(self, cluster: str, policy: str, replicated_to: str | None) -> Any:
        """The newest Completed backup of the policy not marked damaged (and copied to ``replicated_to``)."""
        token = None
        while True:
            page, token = self._backups.list(cluster, limit=50, next_token=token, states=[BackupState.COMPLETED])
            for record in page:
                if record.policy != policy or record.damaged:
                    continue
                if replicated_to and (record.replicas or {}).get(replicated_to, {}).get("state") != "Replicated":
                    continue
                return record
            if token is None:
                return None

    def _announce(self, record: VerificationRecord) -> None:
        if self._metrics is not None:
            self._metrics(record)
        if self._events is None:
            return
        event = verification_event(
            passed=record.passed,
            verification_id=record.verification_id,
            policy=record.policy,
            cluster=record.cluster,
            target_cluster=record.target_cluster,
            backup_id=record.backup_id,
            state=record.state,
            rto_s=record.rto_s,
            rto_target_minutes=record.rto_target_minutes,
            rto_exceeded=record.rto_exceeded,
            problems=record.problems_total,
            message=record.message,
            outcomes=record.outcomes,
        )
        announce(self._events, event)  # the result is recorded; a lost event is logged, not fatal


def get_record(verifications: VerificationCatalog, run_id: str) -> VerificationRecord | None:
    try:
        return verifications.get(run_id)
    except RecordNotFound:
        return None
