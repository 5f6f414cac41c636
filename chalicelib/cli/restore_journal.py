"""A restore the CLI runs itself is recorded in the catalog like one the webhook starts, so ``restore get`` lists it.

The record goes through the job's own states (Pending, Running, then terminal) with the catalog's conditional
writes; this process is its only worker. Without a table (a restore from a replica bucket when the primary region
is gone) nothing is recorded, and the restore runs all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_WORKER = "cli"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class LocalRestoreJournal:
    catalog: Any | None
    restore_id: str

    @classmethod
    def open(cls, services: Any, manifest: Any, options: Any, *, target: str | None) -> LocalRestoreJournal:
        from chalicelib.catalog.dynamo import iso
        from chalicelib.catalog.restore_records import RestoreRecord
        from chalicelib.core.restore_jobs import RestoreState

        restore_id = options.restore_id
        if not services.settings.table:
            return cls(None, restore_id)
        catalog = services.restore_catalog()
        now = _now()
        record = RestoreRecord(
            restore_id=restore_id,
            state=RestoreState.PENDING,
            backup_cluster=manifest.cluster,
            backup_id=manifest.backup_id,
            # A kubeconfig on this machine: its context's name only, never the credentials.
            target_cluster={"name": target or "(kubeconfig current-context)", "via": "cli"},
            options=options.to_dict(),
            dry_run=bool(options.dry_run),
            created_at=iso(now),
        )
        catalog.create(record, idem_key=f"cli:{restore_id}", request_hash=restore_id, now=now)
        catalog.claim(restore_id, _WORKER, now, stale_after=timedelta(hours=1))
        return cls(catalog, restore_id)

    def finish(self, result: Any) -> None:
        """The engine's outcome: counts, the failures the record keeps, and the terminal state."""
        if self.catalog is None:
            return
        from chalicelib.core.restore_jobs import TERMINAL, RestoreState
        from chalicelib.restore.checkpointer import FLUSH_EVERY, describe_result

        rows = [describe_result(item) for item in result.results]
        stored = 0
        # In chunks, as the worker writes them: one done-marker item and transaction each stays far below the limits.
        for seq, at in enumerate(range(0, len(rows), FLUSH_EVERY)):
            chunk = rows[at : at + FLUSH_EVERY]
            outcomes: dict[str, int] = {}
            for _, outcome, _ in chunk:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            stored += self.catalog.record_results(
                self.restore_id,
                _WORKER,
                seq=seq,
                keys=[key for key, _, _ in chunk],
                outcomes=outcomes,
                failures=[failure for _, _, failure in chunk if failure is not None],
                stored_failures=stored,
                now=_now(),
                total=len(rows),
            )
        state = result.state if result.state in TERMINAL else RestoreState.FAILED
        self.catalog.finish(
            self.restore_id,
            _WORKER,
            state,
            _now(),
            failure=result.message or None,
            plan=result.plan,
            warnings=list(result.warnings),
        )
