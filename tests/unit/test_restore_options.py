from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core.resources import Resource
from chalicelib.core.restore_options import InvalidRestoreOptions, RestoreOptions, parse_namespace_mapping

VERBS = frozenset({"list", "create"})


def test_defaults_are_safe() -> None:
    options = RestoreOptions.from_dict(None)
    assert options.existing_policy == "skip"
    assert options.preserve_node_ports is False
    assert options.restore_pvcs_from_snapshots is True
    assert options.dry_run is False
    assert options.restore_id is None


def test_round_trip() -> None:
    data = {
        "namespace_mapping": {"shop": "shop-dr"},
        "include_namespaces": ["shop*"],
        "exclude_namespaces": ["shop-tmp"],
        "include_resources": ["deployments.apps", "ConfigMap"],
        "exclude_resources": ["secrets"],
        "label_selector": "app=web,tier in (a,b)",
        "existing_policy": "update",
        "preserve_node_ports": True,
        "restore_pvcs_from_snapshots": False,
        "restore_id": "r-20260101-ab12",
        "dry_run": True,
    }
    options = RestoreOptions.from_dict(data)
    assert options.to_dict() == data
    assert RestoreOptions.from_dict(options.to_dict()) == options


@pytest.mark.parametrize(
    "value",
    [{"a": "b", "c": "d"}, ["a:b", "c:d"], "a:b,c:d", " a : b , c:d "],
)
def test_namespace_mapping_forms(value: Any) -> None:
    assert parse_namespace_mapping(value) == {"a": "b", "c": "d"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"namespace_mapping": ["a-b"]}, "'a-b' is not 'source:target'"),
        ({"namespace_mapping": ["a:b:c"]}, "is not 'source:target'"),
        ({"namespace_mapping": {"a": "B_ad"}}, "target 'B_ad' is not a valid namespace name"),
        ({"namespace_mapping": {"a": "x", "b": "x"}}, "maps both 'a' and 'b' to 'x'"),
        ({"namespace_mapping": ["a:b", "a:c"]}, "names 'a' twice"),
        ({"namespace_mapping": 7}, "namespace_mapping must be"),
        ({"existing_policy": "overwrite"}, "existing_policy must be one of skip, update"),
        ({"preserve_node_ports": "yes"}, "preserve_node_ports must be true or false"),
        ({"label_selector": "app in (a"}, "label_selector"),
        ({"restore_id": "has space"}, "cannot be a label value"),
        ({"restore_id": "x" * 64}, "cannot be a label value"),
        ({"include_namespaces": [" "]}, None),
        ({"include_namespaces": "a b"}, "invalid namespace pattern"),
        ({"include_resources": [3]}, "must be a list of strings"),
        ({"frobnicate": True}, "unknown restore options: frobnicate"),
    ],
)
def test_invalid_options_are_refused_with_a_clear_message(data: dict[str, Any], message: str | None) -> None:
    if message is None:  # blank entries are dropped, not an error
        assert RestoreOptions.from_dict(data).include_namespaces == ()
        return
    with pytest.raises(InvalidRestoreOptions, match=message.replace("(", r"\(")):
        RestoreOptions.from_dict(data)


def test_options_are_immutable_copies() -> None:
    mapping = {"a": "b"}
    namespaces = ["shop"]
    options = RestoreOptions(namespace_mapping=mapping, include_namespaces=namespaces)  # type: ignore[arg-type]
    mapping["a"] = "zzz"
    namespaces.append("other")
    assert options.target_namespace("a") == "b"
    assert options.include_namespaces == ("shop",)
    with pytest.raises(TypeError):
        options.namespace_mapping["c"] = "d"  # type: ignore[index]


def test_namespace_filters_use_globs_on_source_namespaces() -> None:
    options = RestoreOptions(include_namespaces=("shop*",), exclude_namespaces=("shop-tmp",))
    assert options.namespace_selected("shop")
    assert options.namespace_selected("shop-eu")
    assert not options.namespace_selected("shop-tmp")
    assert not options.namespace_selected("billing")


def test_resource_filters() -> None:
    deploy = Resource("apps", "v1", "Deployment", "deployments", True, VERBS)
    ns = Resource("", "v1", "Namespace", "namespaces", False, VERBS)
    events = Resource("", "v1", "Event", "events", True, VERBS)
    only_deploy = RestoreOptions(include_resources=("deployments.apps",))
    assert only_deploy.resource_selected(deploy)
    assert only_deploy.resource_selected(ns)  # kept: the deployments need their namespace
    assert not RestoreOptions(include_resources=("configmaps",)).resource_selected(deploy)
    assert not RestoreOptions(exclude_resources=("Deployment",)).resource_selected(deploy)
    assert not RestoreOptions(exclude_resources=("namespaces",)).resource_selected(ns)
    assert not RestoreOptions().resource_selected(events)


def test_filters_answer_each_namespace_and_type_once_and_the_same_as_the_patterns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fnmatch

    calls: list[tuple[str, str]] = []
    real = fnmatch.fnmatchcase

    def counting(name: str, pattern: str) -> bool:
        calls.append((name, pattern))
        return real(name, pattern)

    monkeypatch.setattr(fnmatch, "fnmatchcase", counting)
    options = RestoreOptions.from_dict(
        {"include_namespaces": ["shop*"], "exclude_namespaces": ["shop-old"], "exclude_resources": ["secrets"]}
    )
    answers = [options.namespace_selected(ns) for ns in ["shop", "shop-old", "db", "shop", "shop-old", "db"] * 50]
    assert answers[:3] == [True, False, False]
    assert answers == answers[:3] * 100
    assert len(calls) == 5  # shop: include + exclude; shop-old: include + exclude; db: include only
    secrets = Resource("", "v1", "Secret", "secrets", True, frozenset())
    configmaps = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset())
    assert [options.resource_selected(r) for r in (secrets, configmaps, secrets)] == [False, True, False]
    # A changed copy answers for itself.
    import dataclasses

    assert dataclasses.replace(options, exclude_namespaces=()).namespace_selected("shop-old") is True
    assert options.namespace_selected("shop-old") is False
    assert options.selector is options.selector
