"""The hooks block of a policy and Velero's pod annotations, parsed (core/hooks.py)."""

from __future__ import annotations

import pytest

from chalicelib.core.errors import InvalidPolicy
from chalicelib.core.hooks import (
    ANNOTATION,
    CONTINUE,
    EXEC,
    FAIL,
    POST,
    PRE,
    HookSettings,
    parse_go_duration,
    parse_hooks,
    velero_hook,
)
from chalicelib.core.jobs import BackupJob
from chalicelib.core.policies import Policy

BASE = {"name": "shop", "cluster": "prod", "schedule": {"cron": "0 * * * *"}, "scope": {"include_namespaces": ["shop"]}}


def test_each_kind_parses_with_phase_defaults() -> None:
    settings, problems = parse_hooks(
        {
            "pre": [
                {"webhook": {"url": "https://hooks.example.com/lifeboat", "timeout": "10s"}},
                {"exec": {"namespace": "db", "pod": "pg-0", "command": ["fsfreeze", "--freeze", "/data"]}},
            ],
            "post": [
                {"lambda": {"function": "thaw", "timeout": 5}},
                {"exec": {"namespace": "db", "selector": "app=pg", "container": "pg", "command": ["fsfreeze", "-u"]}},
            ],
        }
    )
    assert problems == []
    assert settings is not None
    assert [h.on_error for h in settings.pre] == [FAIL, FAIL]
    assert [h.on_error for h in settings.post] == [CONTINUE, CONTINUE]
    assert settings.pre[0].timeout_s == 10.0 and settings.post[0].timeout_s == 5.0
    assert settings.pre[1].command == ("fsfreeze", "--freeze", "/data") and settings.pre[1].container == ""
    assert settings.post[1].selector == "app=pg"
    assert HookSettings.from_dict(settings.to_dict()) == settings


def test_every_problem_is_named_with_its_path() -> None:
    settings, problems = parse_hooks(
        {
            "pre": [
                {"webhook": {"url": "http://plain.example.com/"}},
                {"exec": {"namespace": "db", "pod": "a", "selector": "app=b", "command": []}},
                {"lambda": {"function": "f", "on_error": "ignore", "timeout": "forever"}},
                {"webhook": {}, "lambda": {}},
            ],
            "during": [],
        }
    )
    assert settings is None
    text = "\n".join(problems)
    assert "hooks: unknown fields during" in text
    assert "hooks.pre[0].webhook.url: must be an https:// URL" in text
    assert "hooks.pre[1].exec: give exactly one of pod (a name) or selector" in text
    assert "hooks.pre[1].exec.command: must be a non-empty list" in text
    assert "hooks.pre[2].lambda.on_error: must be fail or continue; got 'ignore'" in text
    assert "hooks.pre[2].lambda.timeout: must be seconds or a duration" in text
    assert "hooks.pre[3]: must be exactly one of" in text


def test_policy_carries_hooks_to_the_job() -> None:
    hooks = {"pre": [{"webhook": {"url": "https://h.example.com/x"}}], "post": []}
    policy = Policy.from_dict({**BASE, "hooks": hooks})
    assert policy.hooks.pre[0].url == "https://h.example.com/x"
    assert Policy.from_dict(policy.to_dict()) == policy
    job = BackupJob.from_dict({"job_id": "j", "cluster": {"name": "prod", "auth": {"type": "eks"}}})
    assert not job.hooks.enabled
    with_hooks = BackupJob.from_dict({**job.to_dict(), "hooks": policy.hooks.to_dict()})
    assert with_hooks.hooks == policy.hooks
    assert BackupJob.from_dict(with_hooks.to_dict()) == with_hooks


def test_a_policy_with_a_bad_hook_is_refused_naming_the_policy() -> None:
    with pytest.raises(InvalidPolicy, match=r"policy \(shop\)\.hooks\.post\[0\]\.exec\.namespace: is required"):
        Policy.from_dict({**BASE, "hooks": {"post": [{"exec": {"pod": "x", "command": ["true"]}}]}})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("1m", 60.0), ("1m30s", 90.0), ("1.5h", 5400.0), ("500ms", 0.5), ("0", 0.0), ("2h45m", 9900.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["300", "", "s", "1x", "1m 30s", "1.2.3s"])
def test_go_durations_refused(text: str) -> None:
    assert parse_go_duration(text) is None


def _pod(annotations: dict[str, str], containers: tuple[str, ...] = ("nginx", "fsfreeze")) -> dict[str, object]:
    return {
        "metadata": {"name": "web-0", "namespace": "nginx-example", "annotations": annotations},
        "spec": {"containers": [{"name": c} for c in containers]},
    }


def test_velero_documented_example() -> None:
    # The nginx example of Velero's docs: freeze before, unfreeze after, in the fsfreeze sidecar.
    pod = _pod(
        {
            "pre.hook.backup.velero.io/container": "fsfreeze",
            "pre.hook.backup.velero.io/command": '["/sbin/fsfreeze", "--freeze", "/var/log/nginx"]',
            "post.hook.backup.velero.io/container": "fsfreeze",
            "post.hook.backup.velero.io/command": '["/sbin/fsfreeze", "--unfreeze", "/var/log/nginx"]',
        }
    )
    pre, post = velero_hook(pod, PRE), velero_hook(pod, POST)
    assert pre is not None and post is not None
    assert pre.hook.kind == EXEC and pre.hook.source == ANNOTATION
    assert pre.hook.command == ("/sbin/fsfreeze", "--freeze", "/var/log/nginx")
    assert (pre.hook.namespace, pre.hook.pod, pre.hook.container) == ("nginx-example", "web-0", "fsfreeze")
    assert post.hook.command[1] == "--unfreeze"
    # Velero's defaults: on-error Fail (post hooks too), 30s.
    assert (pre.hook.on_error, pre.hook.timeout_s, post.hook.on_error) == (FAIL, 30.0, FAIL)
    assert pre.warnings == () and post.warnings == ()


def test_velero_defaults_and_string_command() -> None:
    hook = velero_hook(
        _pod(
            {
                "pre.hook.backup.velero.io/command": "/usr/bin/sync",
                "pre.hook.backup.velero.io/on-error": "Continue",
                "pre.hook.backup.velero.io/timeout": "1m",
            }
        ),
        PRE,
    )
    assert hook is not None
    assert hook.hook.command == ("/usr/bin/sync",)
    assert hook.hook.container == "nginx"  # the pod's first container
    assert (hook.hook.on_error, hook.hook.timeout_s) == (CONTINUE, 60.0)
    assert velero_hook(_pod({"pre.hook.backup.velero.io/command": "x"}), POST) is None
    assert velero_hook(_pod({}), PRE) is None


def test_velero_values_it_would_ignore_fall_back_with_a_warning() -> None:
    # Velero issue 2599: timeout "300" has no unit, so Go refuses it and the default 30s applies.
    hook = velero_hook(
        _pod(
            {
                "pre.hook.backup.velero.io/command": '["/bin/bash", "/extras/velero_backup.bash"]',
                "pre.hook.backup.velero.io/container": "test",
                "pre.hook.backup.velero.io/timeout": "300",
                "pre.hook.backup.velero.io/on-error": "continue",
            }
        ),
        PRE,
    )
    assert hook is not None
    assert (hook.hook.timeout_s, hook.hook.on_error) == (30.0, FAIL)
    text = "\n".join(hook.warnings)
    assert "pre.hook.backup.velero.io/timeout '300' is not a Go duration" in text
    assert "pre.hook.backup.velero.io/on-error 'continue' is not Fail or Continue" in text
    assert "container names 'test', which the pod does not have" in text
