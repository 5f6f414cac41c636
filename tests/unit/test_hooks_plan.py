"""Which hooks a backup runs: the policy's and the Velero annotations of the pods in its namespaces, in order."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from chalicelib.backup.hooks import NAMESPACE_LISTS_MAX, HookRunner
from chalicelib.core.hooks import ANNOTATION, HookSettings

SYNC = '["/bin/sync"]'


def _pod(namespace: str, name: str, **annotations: str) -> dict[str, Any]:
    keys = {k.replace("_", "."): v for k, v in annotations.items()}
    return {
        "metadata": {"namespace": namespace, "name": name, "annotations": keys},
        "spec": {"containers": [{"name": "c"}]},
    }


class _Client:
    def __init__(self, pods: list[dict[str, Any]], fail: bool = False) -> None:
        self.pods, self.fail = pods, fail
        self.selectors: list[tuple[str, str | None]] = []

    def list_pages(self, path: str, label_selector: str | None = None) -> Any:
        self.selectors.append((path, label_selector))
        if self.fail:
            raise RuntimeError("403 Forbidden")
        return iter([SimpleNamespace(items=self.pods)])


POLICY = HookSettings.from_dict(
    {
        "pre": [{"webhook": {"url": "https://h.example.com/pre"}}],
        "post": [{"webhook": {"url": "https://h.example.com/post"}}],
    }
)


def test_plan_orders_policy_and_pod_hooks_and_keeps_to_the_scope() -> None:
    client = _Client(
        [
            _pod(
                "shop",
                "db-0",
                **{"pre_hook_backup_velero_io/command": SYNC, "post_hook_backup_velero_io/command": SYNC},
            ),
            _pod("other", "db-0", **{"pre_hook_backup_velero_io/command": SYNC}),
            _pod("shop", "web-0"),
        ]
    )
    plan = HookRunner().plan(POLICY, client, ["shop"], "tier=data")
    assert [h.url or h.pod for h in plan.pre] == ["https://h.example.com/pre", "db-0"]
    # Thawed first, then the policy's post hooks.
    assert [h.url or h.pod for h in plan.post] == ["db-0", "https://h.example.com/post"]
    assert plan.pre[1].source == ANNOTATION and plan.pre[1].namespace == "shop"
    assert client.selectors == [("/api/v1/namespaces/shop/pods", "tier=data")], "one namespace: its own pod list"


def test_many_namespaces_are_searched_with_one_cluster_wide_pod_list() -> None:
    namespaces = [f"ns-{n}" for n in range(NAMESPACE_LISTS_MAX + 1)]
    client = _Client([_pod(ns, "db-0", **{"pre_hook_backup_velero_io/command": SYNC}) for ns in namespaces])
    plan = HookRunner().plan(POLICY, client, namespaces)
    assert client.selectors == [("/api/v1/pods", None)]
    assert sorted(h.namespace for h in plan.pre[1:]) == namespaces
    few = _Client([])
    HookRunner().plan(POLICY, few, ["b", "a"])
    assert few.selectors == [("/api/v1/namespaces/a/pods", None), ("/api/v1/namespaces/b/pods", None)]


def test_annotations_off_or_unlistable_pods() -> None:
    off = HookSettings(POLICY.pre, POLICY.post, annotations=False)
    client = _Client([_pod("shop", "db-0", **{"pre_hook_backup_velero_io/command": SYNC})])
    assert HookRunner().plan(off, client, ["shop"]).pre == POLICY.pre and client.selectors == []
    plan = HookRunner().plan(POLICY, _Client([], fail=True), ["shop"])
    assert plan.pre == POLICY.pre
    assert plan.warnings == ("cannot list pods for their Velero hook annotations: 403 Forbidden",)
