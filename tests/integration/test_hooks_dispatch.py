"""A policy's hooks travel with its scheduled job: the dispatcher puts them in the message the worker parses."""

from __future__ import annotations

from chalicelib.core.jobs import BackupJob
from tests.integration.test_dispatcher import Env, env, policy_file  # noqa: F401 -- env is the fixture
from tests.support.clocks import utc

HOOKS = {
    "pre": [{"exec": {"namespace": "shop", "selector": "app=db", "command": ["fsfreeze", "-f", "/data"]}}],
    "post": [{"webhook": {"url": "https://hooks.example.com/x", "timeout": "5s"}}],
}


def test_the_dispatched_job_carries_the_policys_hooks(env: Env) -> None:  # noqa: F811 -- the fixture
    env.service.apply_document(policy_file({"name": "shop-hooked", "schedule": {"cron": "0 2 * * *"}, "hooks": HOOKS}))
    env.clock.now = utc(2026, 1, 10, 2, 0, 30)
    assert env.dispatcher().dispatch_due().counts() == {"dispatched": 1}
    (message,) = env.messages()
    job = BackupJob.from_dict(message)
    assert job.hooks.pre[0].command == ("fsfreeze", "-f", "/data") and job.hooks.pre[0].on_error == "fail"
    assert job.hooks.post[0].url == "https://hooks.example.com/x" and job.hooks.post[0].timeout_s == 5.0
