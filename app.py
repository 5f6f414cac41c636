"""Lifeboat's Lambda handlers: each unpacks its event, calls one service function and returns."""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice, Cron, Rate, Request, Response

app = Chalice(app_name="lifeboat", configure_logs=False)  # powertools owns the "lifeboat" logger


# -- backups -----------------------------------------------------------------------------------------------------


@app.on_sqs_message(queue="lifeboat-backup-jobs", batch_size=1)
def backup_worker(event: Any) -> None:
    """One message is a backup job, a shard of a sharded backup or its commit; an exception returns the message to
    the queue (and, in the end, the DLQ). A shard checkpoints and continues before the Lambda deadline."""
    from chalicelib.backup.worker import handle_message
    from chalicelib.services import get_services

    remaining_ms = getattr(event.context, "get_remaining_time_in_millis", None)
    for record in event:
        handle_message(get_services().backup_service(), record.body, remaining_ms=remaining_ms)


@app.lambda_function(name="run_backup")
def run_backup(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run a backup job directly (the event is the job itself)."""
    from chalicelib.backup.worker import handle_job
    from chalicelib.services import get_services

    return handle_job(get_services().backup_service(), event)


# -- restores and backups: the signed HTTP API, and the restore worker -------------------------------------------


def _request() -> Request:
    """The request being handled (Chalice sets it before a route runs)."""
    request = app.current_request
    assert request is not None, "route called outside a request"
    return request


def _body(request: Request) -> bytes:
    """The raw body bytes, which the signature covers."""
    body = request.raw_body
    return body if isinstance(body, bytes) else body.encode()


def _respond(reply: Any) -> Response:
    return Response(body=reply.body, status_code=reply.status, headers=reply.headers)


@app.route("/v1/restores", methods=["POST"])
def create_restore() -> Response:
    """Start a restore; the signature covers the raw body bytes, so they are passed on untouched."""
    from chalicelib.services import get_services

    request = _request()
    return _respond(get_services().restore_api().submit(_body(request), request.headers))


@app.route("/v1/restores/{restore_id}", methods=["GET"])
def get_restore(restore_id: str) -> Response:
    """A restore's state, progress, failures, timings (and plan, for a dry run)."""
    from chalicelib.services import get_services

    return _respond(get_services().restore_api().status(restore_id, _request().headers))


@app.route("/v1/backups", methods=["GET"])
def list_backups() -> Response:
    """A page of a cluster's backups, newest first (?cluster=&limit=&next_token=)."""
    from chalicelib.services import get_services

    request = _request()
    return _respond(get_services().backup_api().list(request.query_params, request.headers))


@app.on_sqs_message(queue="lifeboat-restore-jobs", batch_size=1)
def restore_worker(event: Any) -> None:
    """One message is one restore job; it checkpoints and re-enqueues itself before the Lambda deadline."""
    from chalicelib.services import get_services

    worker = get_services().restore_worker(remaining_ms=getattr(event.context, "get_remaining_time_in_millis", None))
    for record in event:
        worker.handle_message(record.body)


# -- restore verification ----------------------------------------------------------------------------------------


@app.on_sqs_message(queue="lifeboat-verification-jobs", batch_size=1)
def verification_worker(event: Any) -> None:
    """One message starts a policy's restore verification, or continues one that waits for readiness."""
    from chalicelib.services import get_services

    worker = get_services().verification_worker()
    for record in event:
        worker.handle_message(record.body)


@app.schedule(Rate(15, unit=Rate.MINUTES))
def etcd_verifier(event: Any) -> dict[str, Any]:
    """Restores the newest etcd snapshot of each self-managed cluster with etcdutl and reads it back (where the
    deployment ships the etcd binaries, LIFEBOAT_ETCD_BIN_DIR); records "unverified" where it does not."""
    from chalicelib.services import get_services
    from chalicelib.snapshots.etcd_sweep import publish_sweep_metrics

    report = get_services().etcd_verification_sweep().run()
    publish_sweep_metrics(report)
    return report.to_dict()


# -- cross-region replication ------------------------------------------------------------------------------------


@app.on_sqs_message(queue="lifeboat-replication", batch_size=10)
def replicator(event: Any) -> None:
    """S3 object-created events: verified copies into the replica region, each manifest after its closure."""
    from chalicelib.replication.worker import handle_messages
    from chalicelib.services import get_services

    handle_messages(get_services().replicator(), [record.body for record in event])


@app.schedule(Rate(15, unit=Rate.MINUTES))
def replication_reconciler(event: Any) -> dict[str, Any]:
    """Replicates manifests whose events were lost (outages, DLQ) and publishes the backlog."""
    from chalicelib.replication.worker import run_reconciler
    from chalicelib.services import get_services

    time_left = getattr(event.context, "get_remaining_time_in_millis", None)
    return run_reconciler(get_services().replication_reconciler(), time_left)


# -- EBS direct snapshots -----------------------------------------------------------------------------------------


@app.on_cw_event({"source": ["aws.ec2"], "detail-type": ["EBS Snapshot Notification"]})
def ebs_snapshot_events(event: Any) -> dict[str, Any]:
    """A backup's EBS snapshot or its copy finished (or failed): recorded in the catalog."""
    from chalicelib.services import get_services

    return get_services().snapshot_events().handle(event.to_dict())


@app.schedule(Rate(15, unit=Rate.MINUTES))
def ebs_snapshot_poller(event: Any) -> dict[str, Any]:
    """Settles EBS snapshots and copies whose notification never came, from EC2's own state."""
    from chalicelib.services import get_services

    return get_services().snapshot_events().poll()


# -- policies, scheduling, maintenance ---------------------------------------------------------------------------

_POLICY_CONTENT_TYPES = ["application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/plain"]


@app.schedule(Rate(1, unit=Rate.MINUTES))
def dispatcher(event: Any) -> dict[str, Any]:
    """Starts the backups of due policies; racing dispatchers dispatch each scheduled run once. Near its deadline a
    tick stops claiming and leaves the remaining runs due for the next one."""
    from chalicelib.services import get_services

    remaining_ms = getattr(event.context, "get_remaining_time_in_millis", None)
    return dict(get_services().dispatcher(remaining_ms=remaining_ms).dispatch_due().summary())


@app.schedule(Cron(0, 3, "*", "*", "?", "*"))
def maintenance(event: Any) -> dict[str, Any]:
    """Daily: retention per policy, then garbage collection, under the repository's exclusive lease."""
    from chalicelib.maintenance.service import publish_maintenance_metrics
    from chalicelib.services import get_services

    report = get_services().maintenance_service().run()
    publish_maintenance_metrics(report)
    return dict(report.to_dict())


@app.schedule(Rate(5, unit=Rate.MINUTES))
def rpo_monitor(event: Any) -> dict[str, Any]:
    """Publishes every policy's RPO (age of its newest Completed backup) against its target."""
    from chalicelib.services import get_services

    statuses = get_services().status_service().publish_rpo_metrics()
    return {"policies": len(statuses), "over_target": [s.name for s in statuses if s.rpo_exceeded]}


@app.route("/v1/policies", methods=["GET"])
def list_policies() -> Response:
    from chalicelib.services import get_services

    return _respond(get_services().policy_api().list(_request().headers))


@app.route("/v1/policies", methods=["PUT", "POST"], content_types=_POLICY_CONTENT_TYPES)
def apply_policies() -> Response:
    """Create or update the policies of a policy file (YAML or JSON); the signature covers the raw body."""
    from chalicelib.services import get_services

    request = _request()
    return _respond(get_services().policy_api().apply(_body(request), request.headers, request.method))


@app.route("/v1/policies/{name}", methods=["GET"])
def get_policy(name: str) -> Response:
    from chalicelib.services import get_services

    return _respond(get_services().policy_api().get(name, _request().headers))


@app.route("/v1/policies/{name}", methods=["DELETE"])
def delete_policy(name: str) -> Response:
    """Stop scheduling a policy; a signed request names it in its body ({"name": ...})."""
    from chalicelib.services import get_services

    request = _request()
    return _respond(get_services().policy_api().delete(name, _body(request), request.headers))
