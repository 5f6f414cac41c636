"""Looking at a seeded sample application: objects by apiVersion and kind, and their controller owners."""

from __future__ import annotations

from typing import Any


class Cluster:
    """Lookups by apiVersion/kind for assertions."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.types = {(r.api_version, r.kind): r for r in client.discover()}

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        resource = self.types[(api_version, kind)]
        return self.client.get_object(resource, name, namespace=namespace if resource.namespaced else None)

    def items(self, api_version: str, kind: str, namespace: str) -> list[dict[str, Any]]:
        resource = self.types[(api_version, kind)]
        return self.client.request("GET", resource.collection_path(namespace)).get("items") or []


def _owner_uids(obj: dict[str, Any]) -> list[str]:
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or () if ref.get("controller")]
