"""Hooks of sharded backups: the post hooks wait for the join's commit (or its failure) and run once; post-hook
failures are kept on the backup record, for sharded and one-shot backups alike, and `backups describe` shows them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.backup.worker import handle_message
from chalicelib.cli.main import main
from chalicelib.core.hooks import HookSettings
from chalicelib.core.jobs import BackupJob
from sandbox.kubeapi.podexec import ExecCall, ExecOutcome
from tests.conftest import TEST_BUCKET, TEST_REGION, TEST_TABLE
from tests.support.sharded import ListQueue, drain, make_job

pytestmark = pytest.mark.fakeonly  # exec answers come from commands registered on the test server

CLUSTER = "sharded"


@pytest.fixture
def exec_handlers(fake_kube: Any) -> Iterator[Any]:
    fake_kube.exec_handlers.clear()
    yield fake_kube.exec_handlers
    fake_kube.exec_handlers.clear()


def _hooked_job(kubeconfig_path: Any, namespaces: list[str], **post: Any) -> BackupJob:
    data = namespaces[1]
    target = {"namespace": data, "pod": "db-0", "container": "postgres"}
    hooks = {
        "pre": [{"exec": {**target, "command": ["freeze"]}}],
        "post": [{"exec": {**target, "command": ["thaw"], **post}}],
    }
    job = make_job(kubeconfig_path, CLUSTER, namespaces, shard=True)
    return replace(job, policy="shop", hooks=HookSettings.from_dict(hooks))


def _watch_thaw(exec_handlers: Any, catalog: Any, outcome: ExecOutcome) -> list[tuple[str, bool]]:
    """Register ``thaw``: each run notes the backup's state and whether its manifest was recorded by then."""
    seen: list[tuple[str, bool]] = []

    def thaw(_call: ExecCall) -> ExecOutcome:
        records, _ = catalog.list(CLUSTER)
        seen.extend((str(r.state), bool(r.manifest_key)) for r in records)
        return outcome

    exec_handlers.register("freeze", ExecOutcome())
    exec_handlers.register("thaw", thaw)
    return seen


def _programs(exec_handlers: Any) -> list[str]:
    return [c.command[0] for c in exec_handlers.calls if c.command[0] in ("freeze", "thaw")]


def test_post_hooks_of_a_sharded_backup_run_after_the_join_commits_and_once(
    repos, kubeconfig_path, app_ns, exec_handlers
):
    _, sharded = repos
    seen = _watch_thaw(exec_handlers, sharded.catalog(), ExecOutcome())
    queue = ListQueue()
    service = sharded.backup_service(queue=queue)
    backup_id = handle_message(service, _hooked_job(kubeconfig_path, app_ns.namespaces).to_dict())["backup_id"]
    # Planned and every shard listed: the freeze is still held, since the commit has not happened yet.
    drain(service, queue, stop=lambda message: message.get("type") == "commit")
    assert [m.get("type") for m in queue.messages] == ["commit"]
    assert _programs(exec_handlers) == ["freeze"]
    # The commit delivered twice: the second join finds the backup done and runs nothing.
    queue.messages.append(dict(queue.messages[0]))
    drain(service, queue)

    record = sharded.catalog().get(CLUSTER, backup_id)
    assert record.state == "Completed", record.failure or record.errors
    assert _programs(exec_handlers) == ["freeze", "thaw"]
    assert seen == [("Completed", True)]
    assert "post_hooks" not in record.extra


def test_a_join_that_fails_the_backup_still_runs_its_post_hooks(repos, kubeconfig_path, app_ns, exec_handlers):
    _, sharded = repos
    seen = _watch_thaw(exec_handlers, sharded.catalog(), ExecOutcome())
    queue = ListQueue()
    service = sharded.backup_service(queue=queue)
    backup_id = handle_message(service, _hooked_job(kubeconfig_path, app_ns.namespaces).to_dict())["backup_id"]
    drain(service, queue, stop=lambda message: message.get("type") == "commit")
    repo = sharded.repository()
    repo.store.delete(sorted(repo.store.list("packs/"))[0])  # the commit's reach check now fails the backup
    assert _programs(exec_handlers) == ["freeze"]
    drain(service, queue)

    record = sharded.catalog().get(CLUSTER, backup_id)
    assert record.state == "Failed" and "no longer in the repository" in (record.failure or "")
    assert seen == [("Failed", False)]


def test_a_shard_that_fails_the_backup_runs_its_post_hooks(repos, kubeconfig_path, app_ns, exec_handlers, monkeypatch):
    from chalicelib.backup.items import ItemCollector
    from chalicelib.backup.sharded.context import ShardingOptions

    _, sharded = repos
    seen = _watch_thaw(exec_handlers, sharded.catalog(), ExecOutcome())
    shop = app_ns.namespaces[0]
    real = ItemCollector.handle_page

    def broken(self, page, refs, namespace=None):
        if shop in self.namespaces and page.resource.plural == "secrets":
            raise RuntimeError("disk on fire")
        return real(self, page, refs, namespace)

    monkeypatch.setattr(ItemCollector, "handle_page", broken)
    queue = ListQueue()
    service = sharded.backup_service(queue=queue, sharding_options=ShardingOptions(max_attempts=1))
    backup_id = handle_message(service, _hooked_job(kubeconfig_path, app_ns.namespaces).to_dict())["backup_id"]
    drain(service, queue)

    record = sharded.catalog().get(CLUSTER, backup_id)
    assert record.state == "Failed" and "disk on fire" in (record.failure or "")
    assert seen == [("Failed", False)]


def test_a_coordinator_taking_over_a_backup_whose_shard_failed_runs_its_post_hooks_once(
    repos, kubeconfig_path, app_ns, exec_handlers, monkeypatch
):
    from datetime import UTC, datetime, timedelta

    from chalicelib.backup.items import ItemCollector
    from chalicelib.backup.sharded.context import ShardingOptions

    _, sharded = repos
    catalog = sharded.catalog()
    seen = _watch_thaw(exec_handlers, catalog, ExecOutcome())
    shop = app_ns.namespaces[0]
    real_page = ItemCollector.handle_page

    def broken(self, page, refs, namespace=None):
        if shop in self.namespaces and page.resource.plural == "secrets":
            raise RuntimeError("disk on fire")
        return real_page(self, page, refs, namespace)

    real_transition = type(catalog).transition

    def die_failing(self, cluster, backup_id, state, **kwargs):
        if state == "Failed":  # the shard is marked failed, then its Lambda dies before the backup is
            raise SystemExit("the shard's Lambda timed out")
        return real_transition(self, cluster, backup_id, state, **kwargs)

    monkeypatch.setattr(ItemCollector, "handle_page", broken)
    monkeypatch.setattr(type(catalog), "transition", die_failing)
    queue = ListQueue()
    options = ShardingOptions(max_attempts=1)
    service = sharded.backup_service(queue=queue, sharding_options=options)
    job = _hooked_job(kubeconfig_path, app_ns.namespaces)
    backup_id = handle_message(service, job.to_dict())["backup_id"]
    with pytest.raises(SystemExit):
        drain(service, queue)
    monkeypatch.setattr(type(catalog), "transition", real_transition)
    assert catalog.get(CLUSTER, backup_id).state == "Running"
    assert _programs(exec_handlers) == ["freeze"], "nothing ended the backup yet, so nothing thawed"

    # SQS delivers the job again with the heartbeat stale: this coordinator adopts the plan and fails the backup.
    later = datetime.now(UTC) + timedelta(minutes=10)
    again = sharded.backup_service(queue=queue, sharding_options=options, clock=lambda: later)
    assert handle_message(again, job.to_dict())["backup_id"] == backup_id
    record = catalog.get(CLUSTER, backup_id)
    assert record.state == "Failed" and "disk on fire" in (record.failure or "")
    assert seen == [("Failed", False)]
    # A third delivery finds the backup Failed: the post hooks do not run twice.
    handle_message(again, job.to_dict())
    drain(again, queue)
    assert _programs(exec_handlers) == ["freeze", "thaw"]


def test_post_hook_failures_of_a_sharded_backup_are_kept_on_its_record(repos, kubeconfig_path, app_ns, exec_handlers):
    _, sharded = repos
    _watch_thaw(exec_handlers, sharded.catalog(), ExecOutcome(stderr=b"thaw: not frozen\n", exit_code=3))
    queue = ListQueue()
    service = sharded.backup_service(queue=queue)
    job = _hooked_job(kubeconfig_path, app_ns.namespaces, on_error="continue")
    backup_id = handle_message(service, job.to_dict())["backup_id"]
    drain(service, queue)

    record = sharded.catalog().get(CLUSTER, backup_id)
    assert record.state == "Completed"
    [kept] = record.extra["post_hooks"]
    assert kept["resource"] == "hook/post" and kept["at"]
    assert "post hook 1 (exec" in kept["error"] and "exit code 3" in kept["error"] and "not frozen" in kept["error"]


def test_post_hook_failures_of_a_one_shot_backup_are_kept_and_described(
    services, kubeconfig_path, app_ns, exec_handlers, capsys
):
    oneshot = services
    _watch_thaw(exec_handlers, oneshot.catalog(), ExecOutcome(exit_code=2))
    job = replace(_hooked_job(kubeconfig_path, app_ns.namespaces), shard=False, job_id=f"t-{uuid.uuid4()}")
    outcome = oneshot.backup_service().run(job)
    assert outcome.record.state == "Completed"
    [error] = outcome.post_hook_errors
    record = oneshot.catalog().get(CLUSTER, outcome.record.backup_id)
    assert record.state == "Completed"
    assert [{k: v for k, v in e.items() if k != "at"} for e in record.extra["post_hooks"]] == [error]

    aws = ["--table", TEST_TABLE, "--bucket", TEST_BUCKET, "--region", TEST_REGION]
    capsys.readouterr()
    assert main(["backups", "describe", record.backup_id, *aws]) == 0
    out = capsys.readouterr().out
    assert "post hook failed" in out and "exit code 2" in out
