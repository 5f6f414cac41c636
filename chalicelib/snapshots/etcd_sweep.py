"""The etcd verification function's work: verify the newest etcd snapshot of every cluster that has not been.

It runs on a schedule (``app.py:etcd_verifier``) rather than from the backup's commit, so a lost message can never
leave a snapshot unverified: each run looks at the newest snapshot per cluster whose policies take them, and verifies
it when no verification of it is recorded (or only an "unverified" one, from a deployment without the binaries).
Where the deployment ships no etcd binaries it records that, once per snapshot, instead of a result: the snapshot
then shows as unverified, never as verified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.catalog.etcd_verifications import EtcdVerificationRecord
from chalicelib.core.models import BackupState
from chalicelib.etcd.errors import EtcdError
from chalicelib.observability import logger
from chalicelib.repository.errors import RepositoryError

SCANNED = 20  # newest restorable backups looked at per cluster for one holding an etcd snapshot
NOT_AVAILABLE = "etcd verification is not available in this deployment"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SweepReport:
    verified: list[str] = field(default_factory=list)  # "<cluster>/<backup id>"
    failed: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"verified": self.verified, "failed": self.failed, "unverified": self.unverified}


class EtcdVerificationSweep:
    def __init__(
        self,
        *,
        policies: Any,
        backups: Any,
        results: Any,
        reader: Callable[[], Any],
        verifier: Callable[[], Any],
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """``verifier()`` builds an ``EtcdVerifier``; it raises EtcdError when the binaries are not there."""
        self._policies = policies
        self._backups = backups
        self._results = results
        self._reader = reader
        self._verifier = verifier
        self._clock = clock

    def run(self) -> SweepReport:
        report = SweepReport()
        clusters = sorted(
            {r.policy.cluster for r in self._policies.list() if r.policy.enabled and r.policy.etcd.enabled}
        )
        verifier: Any = None
        missing: EtcdError | None = None
        for cluster in clusters:
            manifest = self._newest_snapshot(cluster)
            if manifest is None:
                continue
            done = self._results.get(cluster, manifest.backup_id)
            if done is not None and not done.unverified:
                continue
            if verifier is None and missing is None:
                try:
                    verifier = self._verifier()
                except EtcdError as exc:
                    missing = exc
            if missing is not None and done is not None:
                continue  # recorded as unverified already, and still nothing to verify with
            self._verify(manifest, verifier, missing, report)
        return report

    def _verify(self, manifest: Any, verifier: Any, missing: EtcdError | None, report: SweepReport) -> None:
        name = f"{manifest.cluster}/{manifest.backup_id}"
        if missing is not None:
            logger().warning(NOT_AVAILABLE, extra={"backup": name, "reason": str(missing)})
            self._results.record(
                EtcdVerificationRecord(
                    cluster=manifest.cluster,
                    backup_id=manifest.backup_id,
                    ok=False,
                    verified_at=self._clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
                    snapshot_at=manifest.finished_at,
                    error=f"{NOT_AVAILABLE}: {missing}",
                    unverified=True,
                )
            )
            report.unverified.append(name)
            return
        result = verifier.verify(manifest)
        (report.verified if result.ok else report.failed).append(name)

    def _newest_snapshot(self, cluster: str) -> Any:
        reader = self._reader()
        page, _ = self._backups.list(
            cluster, limit=SCANNED, states=[BackupState.COMPLETED, BackupState.PARTIALLY_FAILED]
        )
        for record in _newest_first(page):
            try:
                manifest = reader.load_manifest(cluster, record.backup_id)
            except RepositoryError:
                continue  # not readable here: the daily check reports it
            if manifest.etcd_snapshot:
                return manifest
        return None


def _newest_first(records: Iterable[Any]) -> list[Any]:
    return sorted(records, key=lambda r: r.backup_id, reverse=True)


def publish_sweep_metrics(report: SweepReport) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    from chalicelib.observability import metrics

    m = metrics()
    m.add_metric(name="EtcdSnapshotsVerified", unit=MetricUnit.Count, value=len(report.verified))
    m.add_metric(name="EtcdVerificationsFailed", unit=MetricUnit.Count, value=len(report.failed))
    m.add_metric(name="EtcdVerificationUnavailable", unit=MetricUnit.Count, value=len(report.unverified))
    m.flush_metrics()
