"""Backup hooks in real backups: the sample app's Velero annotations, webhooks against a local HTTPS server (signed
like the API), exec hooks through the test server's exec subresource, on_error, timeouts, post hooks on failure."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chalicelib.api.signature import SignedRequest, match, parse_header
from chalicelib.backup.hooks import HookRunner, WebhookSender
from chalicelib.core.hooks import HookSettings
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.scope import BackupScope
from chalicelib.services import Services
from sandbox.kubeapi import tls
from sandbox.kubeapi.podexec import ExecOutcome

pytestmark = pytest.mark.fakeonly  # exec answers come from commands registered on the test server

SECRET = "hook-secret-of-shop"


@dataclass
class Receiver:
    """A local HTTPS webhook receiver: what it was sent, and the status it answers."""

    url: str
    ca_file: str
    status: int = 200
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def receiver(tmp_path: Any) -> Iterator[Receiver]:
    certs = tls.generate()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(certs.ca_pem)
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:  # noqa: N802 -- http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver = state["r"]
            receiver.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(receiver.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"no")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = certs.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["r"] = Receiver(f"https://127.0.0.1:{server.server_address[1]}/hooks/lifeboat?team=db", str(ca_file))
    try:
        yield state["r"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hooked(services: Services, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, aws: None) -> Services:
    """The deployment's hook runner, trusting the receiver's CA (production trusts the system's)."""
    import boto3

    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="lifeboat/hooks/shop", SecretString=SECRET)
    runner = services.hook_runner()
    webhooks = runner._webhooks
    assert webhooks is not None
    trusted = WebhookSender(webhooks._secret_for, webhooks._sign, ca_file=receiver.ca_file)
    monkeypatch.setattr(services, "hook_runner", lambda: HookRunner(webhooks=trusted, functions=runner._functions))
    return services


@pytest.fixture
def exec_handlers(fake_kube: Any) -> Iterator[Any]:
    fake_kube.exec_handlers.clear()
    yield fake_kube.exec_handlers
    fake_kube.exec_handlers.clear()


def _job(kubeconfig_path: Any, namespaces: list[str], hooks: dict[str, Any] | None = None) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    return BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef("test-cluster", auth),
        scope=BackupScope(include_namespaces=tuple(namespaces)),
        policy="shop",
        hooks=HookSettings.from_dict(hooks),
    )


def _verify(call: dict[str, Any]) -> dict[str, Any]:
    """The receiver's check: the API's own signature scheme, under the policy's hook secret."""
    path, _, query = call["path"].partition("?")
    header = parse_header(call["headers"]["Lifeboat-Signature"])
    request = SignedRequest("POST", path, tuple(tuple(q.split("=", 1)) for q in query.split("&")), "", call["body"])
    assert match(header, request, [SECRET.encode()]) is not None, "signature does not verify"
    assert header.key_id == "shop"
    return json.loads(call["body"])  # type: ignore[no-any-return]


def test_sample_app_velero_annotations_run_before_listing(hooked, kubeconfig_path, app_ns, exec_handlers):
    outcome = hooked.backup_service().run(_job(kubeconfig_path, app_ns.namespaces))
    assert outcome.record.state == "Completed", outcome.record.failure or outcome.record.errors
    syncs = [c for c in exec_handlers.calls if c.command == ("/bin/sync",)]
    # Both replicas of the db StatefulSet carry the annotations; the container is the one they name.
    assert sorted(c.pod for c in syncs) == ["db-0", "db-1"]
    assert {(c.namespace, c.container) for c in syncs} == {(app_ns.namespaces[1], "postgres")}


def test_webhooks_are_signed_and_post_hooks_get_the_outcome(hooked, kubeconfig_path, app_ns, receiver):
    hooks = {"pre": [{"webhook": {"url": receiver.url}}], "post": [{"webhook": {"url": receiver.url}}]}
    record = hooked.backup_service().run(_job(kubeconfig_path, app_ns.namespaces, hooks)).record
    assert record.state == "Completed", record.failure or record.errors
    pre, post = (_verify(c) for c in receiver.calls)
    assert pre == {"backup_id": record.backup_id, "cluster": "test-cluster", "policy": "shop", "phase": "pre"}
    assert post == {**pre, "phase": "post", "state": "Completed"}


def test_nothing_is_listed_before_a_pre_hook_ran(hooked, kubeconfig_path, app_ns, receiver, monkeypatch):
    from chalicelib.backup.collect import Listing

    hooks_called: list[int] = []  # how many hooks the receiver had been sent when each listing started
    start = Listing.start

    def recording(self: Listing, *args: Any, **kwargs: Any) -> Any:
        hooks_called.append(len(receiver.calls))
        return start(self, *args, **kwargs)

    monkeypatch.setattr(Listing, "start", recording)
    hooks = {"pre": [{"webhook": {"url": receiver.url}}]}
    record = hooked.backup_service().run(_job(kubeconfig_path, app_ns.namespaces, hooks)).record
    assert record.state == "Completed", record.failure or record.errors
    assert hooks_called == [1], "the objects were listed only after the pre hook was called"


def test_failing_pre_hook_fails_the_backup_and_post_hooks_still_run(
    hooked, kubeconfig_path, app_ns, receiver, exec_handlers
):
    exec_handlers.register("fsfreeze", ExecOutcome(stderr=b"fsfreeze: /data: not a mount point\n", exit_code=1))
    data = app_ns.namespaces[1]
    hooks = {
        "pre": [{"exec": {"namespace": data, "pod": "db-0", "command": ["fsfreeze", "--freeze", "/data"]}}],
        "post": [{"webhook": {"url": receiver.url}}],
    }
    record = hooked.backup_service().run(_job(kubeconfig_path, app_ns.namespaces, hooks)).record
    assert record.state == "Failed"
    assert "pre hook 1 (exec" in record.failure and "fsfreeze" in record.failure
    assert "exit code 1" in record.failure and "not a mount point" in record.failure
    assert not record.manifest_key
    assert _verify(receiver.calls[-1])["state"] == "Failed"


def test_continue_records_the_failure_and_the_backup_goes_on(hooked, kubeconfig_path, app_ns, receiver):
    receiver.status = 503
    hooks = {"pre": [{"webhook": {"url": receiver.url, "on_error": "continue"}}]}
    record = hooked.backup_service().run(_job(kubeconfig_path, app_ns.namespaces, hooks)).record
    assert record.state == "PartiallyFailed"
    assert record.manifest_key
    [error] = [e for e in record.errors if e["resource"] == "hook/pre"]
    assert "webhook https://127.0.0.1" in error["error"] and "answered 503" in error["error"]
    assert "team=db" not in error["error"], "a URL's query may hold a token; errors leave it out"


def test_exec_timeout_fails_a_fail_hook(hooked, kubeconfig_path, app_ns, exec_handlers):
    exec_handlers.register("redis-cli", ExecOutcome(delay=2.0))
    data = app_ns.namespaces[1]
    hooks = {
        "pre": [
            {
                "exec": {
                    "namespace": data,
                    "selector": "app.kubernetes.io/name=db",
                    "command": ["redis-cli", "BGSAVE"],
                    "timeout": "500ms",
                }
            }
        ]
    }
    record = hooked.backup_service().run(_job(kubeconfig_path, app_ns.namespaces, hooks)).record
    assert record.state == "Failed"
    assert "did not end within 0.5s" in record.failure


def test_post_hook_failures_are_reported_not_written(hooked, kubeconfig_path, app_ns, exec_handlers):
    exec_handlers.register("thaw", ExecOutcome(exit_code=2))
    data = app_ns.namespaces[1]
    hooks = {"post": [{"exec": {"namespace": data, "pod": "db-1", "container": "postgres", "command": ["thaw"]}}]}
    outcome = hooked.backup_service().run(_job(kubeconfig_path, app_ns.namespaces, hooks))
    assert outcome.record.state == "Completed"
    [error] = outcome.post_hook_errors
    assert error["resource"] == "hook/post" and f"exit code 2 in pod {data}/db-1 container postgres" in error["error"]
    assert [c.pod for c in exec_handlers.calls if c.command == ("thaw",)] == ["db-1"]


def test_webhook_refuses_an_untrusted_certificate(services, receiver, aws):
    import boto3

    boto3.client("secretsmanager").create_secret(Name="lifeboat/hooks/shop", SecretString=SECRET)
    sender = services.hook_runner()._webhooks  # the system CAs only: the receiver's self-signed CA is not among them
    assert sender is not None
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        sender.send(receiver.url, {"phase": "pre"}, "shop", 5)
    assert receiver.calls == []
