"""The product as it runs when deployed, on the emulated AWS and the local Kubernetes API.

Every step goes through ``app.py``'s own functions, fed the way Lambda feeds them: the dispatcher's tick, SQS
messages handed over by an event-source pump (backups, volume snapshot waits, restores, verifications,
replication, whose messages are S3's own object-created notifications), the signed webhook over HTTP, and the
scheduled maintenance and RPO functions. Two things differ from a deployment and say so: the dispatcher's clock is
moved to each policy's next run instead of waiting for it, and the waits continue after one second
(``LIFEBOAT_POLL_DELAY_S``) instead of thirty.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.environment import REGION, REPLICA_REGION, Sandbox

CLUSTER = "sandbox"
POLICY = "sandbox-hourly"
QUEUES = {
    "backup_worker": ("lifeboat-backup-jobs", 1),
    "restore_worker": ("lifeboat-restore-jobs", 1),
    "verification_worker": ("lifeboat-verification-jobs", 1),
    "replicator": ("lifeboat-replication", 10),
}


class EventSources:
    """Lambda's SQS event-source mappings: each queue's messages go to its function, deleted once it returns; a
    function that raises leaves the message to come back after its visibility timeout, as SQS does."""

    def __init__(self, client: Any, sqs: Any, urls: dict[str, str]) -> None:
        self._client, self._sqs, self._urls = client, sqs, urls
        self.invocations: dict[str, int] = dict.fromkeys(urls, 0)
        self.errors: list[str] = []

    def pump(self, done: Callable[[], bool], *, timeout_s: float = 40.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            moved = sum(self._deliver(function) for function in self._urls)
            if done():
                return
            if not moved:
                time.sleep(0.2)  # delayed messages (a wait's continuation) become visible on their own
        raise RuntimeError(f"the sandbox's queues did not settle in {timeout_s:.0f} s (errors: {self.errors[-3:]})")

    def _deliver(self, function: str) -> int:
        queue_name, batch = QUEUES[function]
        url = self._urls[function]
        messages = self._sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=batch, WaitTimeSeconds=0, VisibilityTimeout=2
        ).get("Messages", [])
        if not messages:
            return 0
        event = self._client.events.generate_sqs_event(
            message_bodies=[m["Body"] for m in messages], queue_name=queue_name
        )
        self.invocations[function] += 1
        try:
            self._client.lambda_.invoke(function, event)
        except Exception as exc:  # noqa: BLE001 -- as Lambda: the message comes back, the error is recorded
            self.errors.append(f"{function}: {type(exc).__name__}: {exc}")
            return len(messages)
        for m in messages:
            self._sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return len(messages)


class SandboxServices:
    """The composition root with the dispatcher's clock moved ahead (``advance_to``); everything else as deployed."""

    def __init__(self, settings: Any) -> None:
        from chalicelib.services import Services

        self._services = Services(settings)
        self._now: datetime | None = None

    def advance_to(self, when: datetime) -> None:
        self._now = when

    def dispatcher(self, *, remaining_ms: Any = None) -> Any:
        # chalice.test's Lambda context counts down from 3 s whatever the function's timeout, which is below the
        # dispatcher's reserve: the sandbox's tick runs without a deadline instead of claiming nothing.
        del remaining_ms
        clock = (lambda: self._now) if self._now is not None else None
        return self._services.dispatcher(clock=clock)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._services, name)


def scheduled(chalice: Any, function: str) -> Any:
    """Invoke a scheduled function with the event EventBridge's schedule sends it."""
    event = chalice.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[f"lifeboat-{function}"]
    )
    return chalice.lambda_.invoke(function, event).payload


def provision(sandbox: Sandbox) -> tuple[Any, Any]:
    """Queues, S3 -> SQS notifications, the cluster's registration and an API client: (settings, the API key)."""
    import boto3

    from chalicelib.api.grants import Grant
    from chalicelib.services import Services
    from sandbox.environment import BUCKET
    from sandbox.webhook_demo import KUBECONFIG_SECRET_ID, ApiKey

    endpoint = sandbox.aws_endpoint
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
    urls = {fn: sqs.create_queue(QueueName=name)["QueueUrl"] for fn, (name, _) in QUEUES.items()}
    arn = sqs.get_queue_attributes(QueueUrl=urls["replicator"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("s3", region_name=REGION, endpoint_url=endpoint).put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
    sm.create_secret(Name=KUBECONFIG_SECRET_ID, SecretString=sandbox.kubeconfig_path.read_text())
    settings = dataclasses.replace(
        sandbox.settings(),
        backup_queue_url=urls["backup_worker"],
        restore_queue_url=urls["restore_worker"],
        verification_queue_url=urls["verification_worker"],
        poll_delay_s=1,
    )
    services = Services(settings)
    auth = {"type": "kubeconfig_secret", "secret_id": KUBECONFIG_SECRET_ID}
    services.cluster_catalog().register(CLUSTER, auth, kubernetes_version=None, now=datetime.now(UTC))
    grant = Grant.parse([f"read={CLUSTER}", f"restore_from={CLUSTER}", f"restore_into={CLUSTER}"])
    _, key = services.api_client_service().add("sandbox-operator", grant, description="the sandbox's operator")
    return settings, ApiKey("sandbox-operator", key)


def _policy(namespaces: list[str], *, verify: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": POLICY,
        "cluster": CLUSTER,
        "schedule": {"cron": "0 * * * *", "timezone": "UTC"},
        "scope": {"include_namespaces": namespaces},
        "retention": {"keep_last": 1},
        "rpo_target_minutes": 90,
        "volumes": {"mode": "auto"},
    }
    if verify:
        spec["verify"] = {"schedule": {"cron": "*/5 * * * *", "timezone": "UTC"}, "kinds": ["resources", "replica"]}
    return {"policies": [spec]}


def run_product(sandbox: Sandbox, workdir: Path, *, say: Callable[[str], None]) -> dict[str, Any]:
    """The whole product, step by step; returns what each step did (the summary's rows)."""
    import boto3
    from chalice.test import Client

    import app as app_module
    from chalicelib import services as services_module
    from chalicelib.kube import KubeClient
    from sandbox.sample_app import mutate_sample_app, seed_sample_app

    started = time.monotonic()
    settings, api_key = provision(sandbox)
    services = SandboxServices(settings)
    services_module.set_services(services)  # type: ignore[arg-type]
    steps: list[dict[str, Any]] = []

    def step(name: str, t0: float, **facts: Any) -> None:
        steps.append({"step": name, "seconds": round(time.monotonic() - t0, 2), **facts})

    try:
        client = KubeClient.from_kubeconfig(sandbox.kubeconfig_path.read_text())
        seeded = seed_sample_app(client)
        say(f"registered cluster {CLUSTER}; seeded the sample app ({seeded.objects} objects)")
        services.policy_service().apply_document(_policy(seeded.namespaces, verify=False))
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=sandbox.aws_endpoint)
        urls = {fn: getattr(settings, f"{fn.split('_')[0]}_queue_url", None) for fn in QUEUES}
        urls["replicator"] = sqs.get_queue_url(QueueName=QUEUES["replicator"][0])["QueueUrl"]
        with Client(app_module.app) as chalice:
            sources = EventSources(chalice, sqs, urls)
            backups = [_scheduled_backup(chalice, services, sources, step, say) for _ in range(1)]
            say("changed: " + "; ".join(mutate_sample_app(client)))
            backups.append(_scheduled_backup(chalice, services, sources, step, say))
            _replicated(services, sources, backups, step, say)
            verification = _verification(chalice, services, seeded.namespaces, sources, step, say)
            t0 = time.monotonic()
            monitored = scheduled(chalice, "rpo_monitor")
            maintenance = scheduled(chalice, "maintenance")
            step(
                "retention and GC", t0, detail=_maintenance_facts(maintenance), rpo_over_target=monitored["over_target"]
            )
            say(f"maintenance: {_maintenance_facts(maintenance)}")
            # What maintenance wrote (a new index) replicates before the primary bucket is lost.
            sources.pump(lambda: _queue_empty(sqs, urls["replicator"]))
            restore = _restore_after_primary_lost(sandbox, settings, api_key, backups[-1], seeded, sources, step, say)
        status = services.status_service().statuses()[0]
        rpo = {"minutes": status.rpo_minutes, "target_minutes": status.rpo_target_minutes}
        report_path = workdir / "report.html"
        _write_report(services, report_path)
        copies = _copies(services)
    finally:
        services_module.set_services(None)
    return {
        "steps": steps,
        "backups": backups,
        "verification": verification,
        "restore": restore,
        "copies": copies,
        "rpo": rpo,
        "report": str(report_path),
        "invocations": sources.invocations,
        "errors": sources.errors,
        "duration_s": round(time.monotonic() - started, 2),
        "ok": all(b["state"] == "Completed" for b in backups)
        and all(b["replica"] == "Replicated" for b in backups)
        and verification["state"] == "Succeeded"
        and restore["state"] == "Completed",
    }


def _scheduled_backup(chalice: Any, services: Any, sources: EventSources, step: Any, say: Any) -> dict[str, Any]:
    """One dispatcher tick at the policy's next run, then the backup queue until the backup has ended."""
    from chalicelib.core.models import TERMINAL

    t0 = time.monotonic()
    due = datetime.fromisoformat(services.policy_service().get(POLICY).next_run_at)
    services.advance_to(due)
    before = {r.backup_id for r in services.catalog().list(CLUSTER, limit=100)[0]}
    tick = scheduled(chalice, "dispatcher")

    def ended() -> bool:
        page = [r for r in services.catalog().list(CLUSTER, limit=100)[0] if r.backup_id not in before]
        # A backup waiting for its volume snapshots stays Running until its manifest is committed.
        return bool(page) and all(r.state in TERMINAL for r in page)

    sources.pump(ended)
    record = next(r for r in services.catalog().list(CLUSTER, limit=100)[0] if r.backup_id not in before)
    from chalicelib.repository import RepositoryReader

    manifest = RepositoryReader(services.repository()).load_manifest(CLUSTER, record.backup_id)
    volumes = [v.get("state") for v in manifest.volume_snapshots or []]
    label = "full" if record.parent is None else "incremental"
    step(f"{label} backup", t0, dispatched=tick.get("counts", tick), backup_id=record.backup_id)
    say(f"{label} backup {record.backup_id}: {record.state}, volume snapshots {volumes}")
    return {
        "backup": label,
        "backup_id": record.backup_id,
        "state": str(record.state),
        "objects": (record.counts or {}).get("objects", 0),
        "new_blobs": (record.counts or {}).get("blobs_new", 0),
        "bytes_uploaded": (record.stats or {}).get("bytes_uploaded", 0),
        "volume_snapshots": volumes,
        "replica": "",
    }


def _replicated(services: Any, sources: EventSources, backups: list[dict[str, Any]], step: Any, say: Any) -> None:
    """S3's notifications of the backups' objects drive the replicator until both backups are replicated."""
    t0 = time.monotonic()

    def states() -> list[str]:
        return [
            str((services.catalog().get(CLUSTER, b["backup_id"]).replicas or {}).get(REPLICA_REGION, {}).get("state"))
            for b in backups
        ]

    sources.pump(lambda: all(s == "Replicated" for s in states()))
    for b, state in zip(backups, states(), strict=True):
        b["replica"] = state
    step("replication", t0, region=REPLICA_REGION, states=states())
    say(f"replicated to {REPLICA_REGION}: {states()}")


def _verification(
    chalice: Any, services: Any, namespaces: list[str], sources: EventSources, step: Any, say: Any
) -> dict[str, Any]:
    """The policy gains a verify block; the next tick starts the run, the verification queue carries it through."""
    from chalicelib.catalog.verifications import VerificationCatalog

    t0 = time.monotonic()
    services.policy_service().apply_document(_policy(namespaces, verify=True))
    scheduled(chalice, "dispatcher")  # the clock stays at the last backup's run: the verify run is due
    catalog = VerificationCatalog(services.client("dynamodb"), services.settings.table)

    def latest() -> Any:
        runs = catalog.list_for_policy(POLICY, limit=1)
        return runs[0] if runs else None

    sources.pump(lambda: latest() is not None and latest().state in ("Succeeded", "Failed"), timeout_s=60)
    run = latest()
    step("verification", t0, verification_id=run.verification_id, rto_s=run.rto_s, state=run.state)
    say(f"verification {run.verification_id}: {run.state}, RTO {run.rto_s} s, problems {run.problems_total}")
    return {"verification_id": run.verification_id, "state": run.state, "rto_s": run.rto_s, "kinds": run.outcomes}


def _restore_after_primary_lost(
    sandbox: Sandbox,
    settings: Any,
    api_key: Any,
    backup: dict[str, Any],
    seeded: Any,
    sources: EventSources,
    step: Any,
    say: Any,
) -> dict[str, Any]:
    """The primary bucket is emptied and deleted; a signed webhook restore comes back from the replica region."""
    import boto3
    import orjson

    from chalicelib.services import get_services
    from sandbox.environment import BUCKET
    from sandbox.webhook_demo import _call, serving_app

    t0 = time.monotonic()
    s3 = boto3.resource("s3", region_name=REGION, endpoint_url=sandbox.aws_endpoint)
    s3.Bucket(BUCKET).objects.all().delete()
    s3.Bucket(BUCKET).delete()
    say(f"the primary bucket {BUCKET} is gone")
    # The application's namespaces, each into a new one (claims come back from their snapshots).
    mapping = {ns: f"{ns}-dr" for ns in seeded.namespaces}
    options = {"namespace_mapping": [f"{a}:{b}" for a, b in mapping.items()], "include_namespaces": list(mapping)}
    services = get_services()
    catalog = services.restore_catalog()
    results: dict[str, Any] = {}
    with serving_app(services) as base_url:
        for dry_run in (True, False):
            body = {"backup_id": backup["backup_id"], "target_cluster": CLUSTER, "options": options, "dry_run": dry_run}
            status, accepted = _call(f"{base_url}/v1/restores", "POST", api_key, orjson.dumps(body))
            if status != 202:
                raise RuntimeError(f"the webhook refused the restore: HTTP {status}: {accepted}")
            restore_id = accepted["restore_id"]
            sources.pump(
                lambda rid=restore_id: str(catalog.get(rid).state) in ("Completed", "PartiallyFailed", "Failed")
            )
            status, results["plan" if dry_run else "restore"] = _call(
                f"{base_url}{accepted['status_url']}", "GET", api_key
            )
    from chalicelib import services as services_module

    services_module.set_services(services)  # serving_app unsets the composition root on its way out
    plan, done = results["plan"], results["restore"]
    step("restore from the replica", t0, restore_id=done.get("restore_id"), state=done.get("state"))
    say(f"signed dry run {plan.get('restore_id')}: {plan.get('state')}, {(plan.get('plan') or {}).get('counts')}")
    say(f"signed restore {done.get('restore_id')} into {', '.join(mapping.values())} from {REPLICA_REGION}: "
        f"{done.get('state')}")  # fmt: skip
    return {
        "restore_id": done.get("restore_id"),
        "state": done.get("state"),
        "counts": done.get("counts"),
        "warnings": done.get("warnings"),
        "failures": done.get("failures"),
        "plan": plan,
        "namespaces": mapping,
    }


def _queue_empty(sqs: Any, url: str) -> bool:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    waiting = (
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    )
    return all(int(attributes.get(name, 0)) == 0 for name in waiting)


def _maintenance_facts(report: dict[str, Any]) -> str:
    expired = [e for e in report.get("expired", []) if e.get("outcome") == "expired"]
    gc = report.get("collection") or {}
    return (
        f"{len(expired)} backup(s) expired by retention; garbage collection deleted {gc.get('packs_deleted', 0)} packs"
    )


def _write_report(services: Any, path: Path) -> None:
    from chalicelib.cli.report_cmd import build
    from chalicelib.core.report_html import render

    path.write_text(render(build(services, datetime.now(UTC) + timedelta(seconds=1))), encoding="utf-8")


def _copies(services: Any) -> list[dict[str, Any]]:
    from chalicelib.replication.report import copies_report

    return list(copies_report(services, CLUSTER))
