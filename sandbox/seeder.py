"""Creates manifests in a cluster, mapping apiVersion/kind to a served type through discovery, and counts them."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from chalicelib.core.resources import Resource

if TYPE_CHECKING:
    from chalicelib.kube import KubeClient

Manifest = dict[str, Any]


class Seeder:
    """Creates objects, mapping apiVersion/kind to a resource type through discovery."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.by_kind: Counter[str] = Counter()
        self.skipped: list[str] = []
        # "<Kind> <namespace/name>" of objects found owned by their controller's object rather than created.
        self.adopted: list[str] = []
        self._types: dict[tuple[str, str], Resource] = {}
        self._stale = True  # discover lazily, and again once a CRD has added a type

    def resource(self, api_version: str, kind: str) -> Resource | None:
        key = (api_version, kind)
        if key not in self._types and self._stale:
            # Subresources share their parent's kind; the parent (no "/" in plural) is the one to create.
            self._types = {(r.api_version, r.kind): r for r in self.client.discover() if "/" not in r.plural}
            self._stale = False
        return self._types.get(key)

    def ensure(self, obj: Manifest) -> Manifest | None:
        """The live object after creating ``obj`` (or finding it already there); None if its type is not served."""
        from chalicelib.kube.errors import AlreadyExists

        kind, meta = obj["kind"], obj["metadata"]
        resource = self.resource(obj["apiVersion"], kind)
        if resource is None:
            self.skipped.append(f"{kind} {display(meta)}")
            return None
        namespace = meta.get("namespace") if resource.namespaced else None
        try:
            live = self.client.create(resource, obj, namespace=namespace)
        except AlreadyExists:
            live = None
        live = live or self.client.get_object(resource, meta["name"], namespace=namespace)
        if kind == "CustomResourceDefinition":
            self.client.wait_for_crd_established(meta["name"])
            self._stale = True
        self.by_kind[kind] += 1
        return live

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> Manifest | None:
        resource = self.resource(api_version, kind)
        return None if resource is None else self.client.get_object(resource, name, namespace=namespace)

    def owned(self, api_version: str, kind: str, owner: Manifest) -> list[Manifest]:
        """The objects of this kind in ``owner``'s namespace whose controller reference is ``owner`` (by uid, as the
        garbage collector matches them: a name can be reused, a uid cannot), sorted by name."""
        resource = self.resource(api_version, kind)
        if resource is None:
            return []
        listing = self.client.request("GET", resource.collection_path(owner["metadata"]["namespace"])) or {}
        uid = owner["metadata"]["uid"]
        found = [
            item
            for item in listing.get("items") or ()
            if any(
                ref.get("controller") and ref.get("uid") == uid for ref in item["metadata"].get("ownerReferences") or ()
            )
        ]
        for item in found:  # a list's items carry no kind or apiVersion
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return sorted(found, key=lambda item: str(item["metadata"]["name"]))

    def adopt(self, obj: Manifest) -> Manifest:
        """Count ``obj`` (made by a controller, or by an earlier seeding) as seeded, leaving it as it is."""
        self.by_kind[obj["kind"]] += 1
        self.adopted.append(f"{obj['kind']} {display(obj['metadata'])}")
        return obj


def display(meta: dict[str, Any]) -> str:
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
