"""Lifeboat's Lambda handlers: each unpacks its event, calls one service function and returns."""

from __future__ import annotations

from typing import Any

from chalice import Chalice

app = Chalice(app_name="lifeboat")


# -- backups -----------------------------------------------------------------------------------------------------


@app.on_sqs_message(queue="lifeboat-backup-jobs", batch_size=1)
def backup_worker(event: Any) -> None:
    """One message is one backup job; an exception returns the message to the queue (and, in the end, the DLQ)."""
    from chalicelib.backup.worker import handle_job
    from chalicelib.services import get_services

    for record in event:
        handle_job(get_services().backup_service(), record.body)


@app.lambda_function(name="run_backup")
def run_backup(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run a backup job directly (the event is the job itself)."""
    from chalicelib.backup.worker import handle_job
    from chalicelib.services import get_services

    return handle_job(get_services().backup_service(), event)
