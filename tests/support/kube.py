"""What the KubeClient tests share: the types they use, a recorder of backoff sleeps, objects and list paths."""

from __future__ import annotations

from typing import Any

from chalicelib.core.resources import Resource

CONFIGMAPS = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"create", "get", "list", "delete"}))


SECRETS = Resource("", "v1", "Secret", "secrets", True, frozenset({"create", "get", "list", "delete"}))


CRDS = Resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False)


PAGED_COUNT = 1200


PAGE_LIMIT = 100


class Sleeps(list[float]):
    """A recording stand-in for time.sleep, so retry tests neither wait nor guess."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def configmap(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"k": name},
    }


def paged_path(namespace: str) -> str:
    return CONFIGMAPS.collection_path(namespace)
