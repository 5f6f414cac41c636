"""A Kubernetes resource type as discovered from the API server, and the URLs it lives at."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Resource:
    """One listable resource type (e.g. apps/v1 deployments)."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str] = field(default_factory=frozenset)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``plural.group`` as kubectl spells it (``deployments.apps``; ``configmaps`` for core)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def listable(self) -> bool:
        return "list" in self.verbs

    def base_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection_path(self, namespace: str | None = None) -> str:
        """Path of the collection; cluster-wide for a namespaced type when ``namespace`` is None."""
        if self.namespaced and namespace is not None:
            return f"{self.base_path()}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{self.base_path()}/{self.plural}"

    def object_path(self, name: str, namespace: str | None = None) -> str:
        return f"{self.collection_path(namespace)}/{quote(name, safe='')}"

    def matches(self, token: str) -> bool:
        """Whether a user's resource token names this type: ``deployments``, ``deployments.apps``, ``Deployment``."""
        token = token.strip()
        return token in (self.plural, self.group_resource, self.kind) or token.lower() == self.kind.lower()
