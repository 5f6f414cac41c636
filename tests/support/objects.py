"""Kubernetes objects for tests, as a list response would give them."""

from __future__ import annotations

from typing import Any


def configmaps(prefix: str, count: int, namespace: str = "shop") -> list[dict[str, Any]]:
    """``count`` small ConfigMaps named ``<prefix>-<i>``."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{prefix}-{i}", "namespace": namespace},
            "data": {"value": f"{prefix}-{i}" * 8},
        }
        for i in range(count)
    ]


def obj(kind: str, name: str, namespace: str | None = "shop", **fields: Any) -> dict[str, Any]:
    """An object of ``kind``; ``metadata`` and ``apiVersion`` in ``fields`` are merged in, the rest are top-level."""
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta.update(fields.pop("metadata", {}))
    return {"apiVersion": fields.pop("apiVersion", "v1"), "kind": kind, "metadata": meta, **fields}


def gadget_crd(group: str, **metadata: Any) -> dict[str, Any]:
    """A namespaced ``Gadget`` CustomResourceDefinition in ``group``, served at v1, its schema keeping any field."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}", **metadata},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
