"""Lifeboat's Lambda handlers: each unpacks its event, calls one service function and returns."""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice, Request, Response

app = Chalice(app_name="lifeboat", configure_logs=False)  # powertools owns the "lifeboat" logger


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


# -- restores (signed webhook) -----------------------------------------------------------------------------------


def _request() -> Request:
    """The request being handled (Chalice sets it before a route runs)."""
    request = app.current_request
    assert request is not None, "route called outside a request"
    return request


def _respond(reply: Any) -> Response:
    return Response(body=reply.body, status_code=reply.status, headers=reply.headers)


@app.route("/v1/restores", methods=["POST"])
def create_restore() -> Response:
    """Start a restore; the HMAC signature covers the raw body bytes, so they are passed on untouched."""
    from chalicelib.services import get_services

    request = _request()
    return _respond(get_services().webhook_service().submit(request.raw_body, request.headers))


@app.route("/v1/restores/{restore_id}", methods=["GET"])
def get_restore(restore_id: str) -> Response:
    """A restore's state, progress, failures, timings (and plan, for a dry run)."""
    from chalicelib.services import get_services

    request = _request()
    service = get_services().webhook_service()
    return _respond(service.status(restore_id, request.headers, request.context.get("identity")))


@app.route("/v1/backups", methods=["GET"])
def list_backups() -> Response:
    """A page of a cluster's backups, newest first (?cluster=&limit=&next_token=)."""
    from chalicelib.services import get_services

    request = _request()
    service = get_services().webhook_service()
    return _respond(service.backups(request.query_params, request.headers, request.context.get("identity")))


@app.on_sqs_message(queue="lifeboat-restore-jobs", batch_size=1)
def restore_worker(event: Any) -> None:
    """One message is one restore job; it checkpoints and re-enqueues itself before the Lambda deadline."""
    from chalicelib.services import get_services
    from chalicelib.webhook.worker import handle_restore_message

    remaining_ms = getattr(event.context, "get_remaining_time_in_millis", None)
    for record in event:
        handle_restore_message(get_services(), record.body, remaining_ms=remaining_ms)
