"""The restored-object check: server defaults allowed, changed or dropped fields reported with their path."""

from __future__ import annotations

import copy
from typing import Any

from chalicelib.core.restore_check import restored_differences


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop-verify", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def _as_served(sent: dict[str, Any]) -> dict[str, Any]:
    """What a server returns: the object plus server metadata, status and defaults."""
    out = copy.deepcopy(sent)
    out["metadata"].update(uid="u-1", resourceVersion="7", generation=1, creationTimestamp="2026-12-01T00:00:00Z")
    out["metadata"]["finalizers"] = ["foregroundDeletion"]
    out["status"] = {"replicas": 2}
    out["spec"]["strategy"] = {"type": "RollingUpdate"}
    container = out["spec"]["template"]["spec"]["containers"][0]
    container["terminationMessagePath"] = "/dev/termination-log"
    container["ports"][0]["protocol"] = "TCP"
    return out


def test_server_defaults_metadata_and_status_are_not_differences() -> None:
    sent = _deployment()
    assert restored_differences(sent, _as_served(sent)) == []


def test_a_changed_value_is_reported_with_its_path() -> None:
    sent = _deployment()
    served = _as_served(sent)
    served["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.local/nginx:1.25"

    [difference] = restored_differences(sent, served)

    assert difference.path == "spec.template.spec.containers[0].image"
    assert difference.kind == "changed"
    assert difference.describe() == (
        "spec.template.spec.containers[0].image: sent 'nginx:1.25', the server holds 'registry.local/nginx:1.25'"
    )


def test_a_dropped_field_is_missing() -> None:
    sent = _deployment()
    sent["spec"]["template"]["spec"]["containers"][0]["stdin"] = True
    served = _as_served(_deployment())

    [difference] = restored_differences(sent, served)

    assert (difference.path, difference.kind) == ("spec.template.spec.containers[0].stdin", "missing")


def test_a_list_of_another_length_is_reported_once() -> None:
    sent = _deployment()
    served = _as_served(sent)
    served["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy"})

    [difference] = restored_differences(sent, served)

    assert (difference.path, difference.kind) == ("spec.template.spec.containers", "length")
    assert difference.describe() == "spec.template.spec.containers: sent 1 items, the server holds 2"


def test_finalizers_may_be_added_but_not_removed() -> None:
    sent = _deployment()
    sent["metadata"]["finalizers"] = ["example.com/keep"]
    served = _as_served(sent)
    assert served["metadata"]["finalizers"] == ["foregroundDeletion"]

    [difference] = restored_differences(sent, served)

    assert difference.path == "metadata.finalizers['example.com/keep']"
    served["metadata"]["finalizers"] = ["example.com/keep", "kubernetes.io/pvc-protection"]
    assert restored_differences(sent, served) == []


def test_booleans_are_not_numbers_and_ints_equal_floats() -> None:
    sent = _deployment()
    served = _as_served(sent)
    served["spec"]["replicas"] = 2.0
    assert restored_differences(sent, served) == []
    sent["spec"]["paused"] = True
    served["spec"]["paused"] = 1
    assert [d.path for d in restored_differences(sent, served)] == ["spec.paused"]


def test_long_values_are_shortened_in_the_sentence() -> None:
    sent = _deployment()
    served = _as_served(sent)
    served["metadata"]["labels"]["app"] = "x" * 500
    [difference] = restored_differences(sent, served)
    assert len(difference.describe()) < 200
    assert difference.to_dict()["path"] == "metadata.labels.app"


def test_a_key_only_the_server_holds_in_data_is_a_difference() -> None:
    sent = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {"a": "1"}}
    served = copy.deepcopy(sent)
    served["data"]["injected"] = "yes"
    served["metadata"]["labels"] = {"added-by": "a-controller"}  # labels may be added

    [difference] = restored_differences(sent, served)

    assert (difference.path, difference.kind) == ("data.injected", "added")
    assert difference.describe() == "data.injected: not sent, the server holds 'yes'"
