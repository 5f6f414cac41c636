"""The sandbox's signed API restore: the Chalice app served over real HTTP, a worker draining the queue."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

KUBECONFIG_SECRET_ID = "lifeboat/sandbox/kubeconfig"
RESTORE_QUEUE = "lifeboat-restore-jobs"
CLUSTER = "sandbox"


@dataclass(frozen=True)
class ApiKey:
    client_id: str
    key: str


def provision_webhook(sandbox: Any) -> tuple[Any, ApiKey]:
    """The target cluster registered (its kubeconfig in Secrets Manager), an API client allowed to restore from and
    into it, and the restore queue; returns (settings, the client's key)."""
    import dataclasses

    import boto3

    from chalicelib.api.grants import Grant
    from chalicelib.services import Services
    from sandbox.environment import REGION

    endpoint = sandbox.aws_endpoint
    sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
    try:
        sm.create_secret(Name=KUBECONFIG_SECRET_ID, SecretString=sandbox.kubeconfig_path.read_text())
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=KUBECONFIG_SECRET_ID, SecretString=sandbox.kubeconfig_path.read_text())
    queue_url = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint).create_queue(QueueName=RESTORE_QUEUE)[
        "QueueUrl"
    ]
    settings = dataclasses.replace(sandbox.settings(), restore_queue_url=queue_url)
    services = Services(settings)
    auth = {"type": "kubeconfig_secret", "secret_id": KUBECONFIG_SECRET_ID}
    services.cluster_catalog().register(CLUSTER, auth, kubernetes_version=None, now=datetime.now(UTC))
    grant = Grant.parse([f"read={CLUSTER}", f"restore_from={CLUSTER}", f"restore_into={CLUSTER}"])
    client_id = f"sandbox-{uuid.uuid4().hex[:8]}"
    _, key = services.api_client_service().add(client_id, grant, description="the sandbox demo")
    return settings, ApiKey(client_id, key)


@contextmanager
def serving_app(services: Any) -> Iterator[str]:
    """``app.py`` behind Chalice's local server on a free loopback port; yields its base URL."""
    from chalice.config import Config
    from chalice.local import ChaliceRequestHandler, LocalDevServer

    class QuietHandler(ChaliceRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
            """The demo prints its own summary; an access log per request would bury it."""

    import app as app_module
    from chalicelib import services as services_module
    from sandbox.environment import free_port

    services_module.set_services(services)
    port = free_port()
    config = Config.create(chalice_stage="dev", app_name="lifeboat")
    server = LocalDevServer(app_module.app, config, "127.0.0.1", port, handler_cls=QuietHandler)
    # The HTTP server itself: LocalDevServer.serve_forever prints a banner to stdout, which would break --output json.
    thread = threading.Thread(target=server.server.serve_forever, name="lifeboat-sandbox-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.server.shutdown()
        services_module.set_services(None)


def _call(url: str, method: str, api_key: ApiKey, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    from urllib.parse import parse_qsl, urlsplit

    import urllib3

    from chalicelib.api.signature import SignedRequest, sign

    parts = urlsplit(url)
    headers = {"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
    request = SignedRequest.of(method, parts.path, dict(parse_qsl(parts.query)), headers, body)
    headers["Lifeboat-Signature"] = sign(api_key.client_id, api_key.key, request, time.time())
    resp = urllib3.request(method, url, body=body or None, headers=headers, timeout=30)
    return resp.status, orjson.loads(resp.data) if resp.data else {}


def drain_restore_queue(services: Any) -> int:
    """Run every queued restore job, as the restore_worker Lambda would; returns how many ran."""
    sqs = services.client("sqs")
    ran = 0
    while True:
        msgs = sqs.receive_message(
            QueueUrl=services.settings.restore_queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=0
        ).get("Messages", [])
        if not msgs:
            return ran
        for msg in msgs:
            services.restore_worker().handle_message(msg["Body"])
            sqs.delete_message(QueueUrl=services.settings.restore_queue_url, ReceiptHandle=msg["ReceiptHandle"])
            ran += 1


def webhook_restore(
    services: Any, secret: ApiKey, base_url: str, backup_id: str, *, source_ns: str, target_ns: str, dry_run: bool
) -> dict[str, Any]:
    """POST a signed restore of ``source_ns`` into ``target_ns``, run the worker, GET the final status."""
    request = {
        "backup_id": backup_id,
        "target_cluster": CLUSTER,
        "options": {"namespace_mapping": [f"{source_ns}:{target_ns}"], "include_namespaces": [source_ns]},
        "dry_run": dry_run,
    }
    status, accepted = _call(f"{base_url}/v1/restores", "POST", secret, orjson.dumps(request))
    if status != 202:
        raise RuntimeError(f"webhook refused the restore: HTTP {status}: {accepted}")
    drain_restore_queue(services)
    status, body = _call(f"{base_url}{accepted['status_url']}", "GET", secret)
    if status != 200:
        raise RuntimeError(f"restore status unavailable: HTTP {status}: {body}")
    return body
