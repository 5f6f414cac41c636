"""The served resource types: the built-ins plus whatever CustomResourceDefinitions add, and discovery documents."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from sandbox.kubeapi.catalog import BUILTIN_TYPES, GROUP_ORDER, SUB_VERBS, ResourceType

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key of Kubernetes' version ordering: GA before beta before alpha, higher numbers first, others last."""
    match = _VERSION_RE.match(version)
    if not match:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -int(major), -int(minor or 0), "")


class Registry:
    """Types by (group, plural). Not thread-safe on its own: the store's lock guards every call."""

    def __init__(self) -> None:
        self._builtin = {t.key: t for t in BUILTIN_TYPES}
        self._types: dict[tuple[str, str], ResourceType] = dict(self._builtin)
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        self._reindex()

    def _reindex(self) -> None:
        self._group_versions: dict[str, list[str]] | None = None
        self._by_kind = {(t.group, t.kind): t for t in self._types.values() if t.storable}
        for t in self._types.values():  # review APIs are not storable but still have a kind
            self._by_kind.setdefault((t.group, t.kind), t)

    def get(self, group: str, plural: str) -> ResourceType | None:
        return self._types.get((group, plural))

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at group/version under this plural, or None."""
        rtype = self._types.get((group, plural))
        return rtype if rtype is not None and version in rtype.versions else None

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((group, kind))

    def types(self) -> list[ResourceType]:
        return list(self._types.values())

    def builtin(self, key: tuple[str, str]) -> ResourceType | None:
        return self._builtin.get(key)

    def put(self, rtype: ResourceType) -> None:
        self._types[rtype.key] = rtype
        self._reindex()

    def remove(self, key: tuple[str, str]) -> None:
        """Drop a type; a built-in one that a CRD had replaced comes back."""
        builtin = self._builtin.get(key)
        if builtin is not None:
            self._types[key] = builtin
        else:
            self._types.pop(key, None)
        self._reindex()

    def group_versions(self) -> dict[str, list[str]]:
        """Each group's served versions, preferred first, groups in the server's order (core group excluded)."""
        if self._group_versions is None:
            self._group_versions = self._compute_group_versions()
        return self._group_versions

    def _compute_group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, set[str]] = {}
        for t in self._types.values():
            if t.group:
                groups.setdefault(t.group, set()).update(t.versions)
        priority = {g: i for i, g in enumerate(GROUP_ORDER)}
        ordered = sorted(groups, key=lambda g: (priority.get(g, len(priority)), g))
        return {g: self._ordered_versions(g, groups[g]) for g in ordered}

    def _ordered_versions(self, group: str, versions: set[str]) -> list[str]:
        # Built-in groups list their versions as declared (preferred first); CRD groups by version priority.
        declared = [v for t in BUILTIN_TYPES if t.group == group for v in t.versions]
        rest = sorted(versions - set(declared), key=version_priority)
        return [v for v in dict.fromkeys(declared) if v in versions] + rest

    def has_group_version(self, group: str, version: str) -> bool:
        if not group:
            return version == "v1"
        return version in self.group_versions().get(group, [])

    def resources_at(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and version in t.versions]


def _storage_hash(rtype: ResourceType, version: str) -> str:
    digest = hashlib.sha256(f"{rtype.group}/{version}/{rtype.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def resource_list_doc(registry: Registry, group: str, version: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for rtype in registry.resources_at(group, version):
        main: dict[str, Any] = {
            "name": rtype.plural,
            "singularName": rtype.singular,
            "namespaced": rtype.namespaced,
            "kind": rtype.kind,
            "verbs": list(rtype.verbs),
            **_names(rtype),
        }
        if rtype.storable:
            main["storageVersionHash"] = _storage_hash(rtype, version)
        entries.append(main)
        sub = {"singularName": "", "namespaced": rtype.namespaced}
        if rtype.status:
            entries.append({"name": f"{rtype.plural}/status", **sub, "kind": rtype.kind, "verbs": list(SUB_VERBS)})
        if rtype.scale:
            entries.append(
                {
                    "name": f"{rtype.plural}/scale",
                    **sub,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": list(SUB_VERBS),
                }
            )
        for name, verbs in rtype.extra_subresources:
            entries.append({"name": name, **sub, "kind": rtype.kind, "verbs": list(verbs)})
    entries.sort(key=lambda e: e["name"])
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}


def aggregated_discovery_doc(registry: Registry, *, core: bool, stale: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``/api`` (``core``) or ``/apis`` as an ``APIGroupDiscoveryList`` (apidiscovery.k8s.io/v2, GA in v1.30): every
    group with its versions, preferred first, and each version's resources with their subresources. The
    group/versions in ``stale`` are marked as those of an aggregated API server that does not answer are."""
    groups = {"": ["v1"]} if core else registry.group_versions()
    items = []
    for group, versions in groups.items():
        served = [
            {
                "version": version,
                "resources": [
                    _resource_discovery(t, group, version)
                    for t in sorted(registry.resources_at(group, version), key=lambda t: t.plural)
                ],
                "freshness": "Stale" if (f"{group}/{version}" if group else version) in stale else "Current",
            }
            for version in versions
        ]
        items.append({"metadata": {"name": group} if group else {}, "versions": served})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def _resource_discovery(rtype: ResourceType, group: str, version: str) -> dict[str, Any]:
    kind = {"group": group, "version": version, "kind": rtype.kind}
    entry: dict[str, Any] = {
        "resource": rtype.plural,
        "responseKind": kind,
        "scope": "Namespaced" if rtype.namespaced else "Cluster",
        "singularResource": rtype.singular,
        "verbs": list(rtype.verbs),
        **_names(rtype),
    }
    subresources: list[dict[str, Any]] = []
    if rtype.status:
        subresources.append({"subresource": "status", "responseKind": kind, "verbs": list(SUB_VERBS)})
    if rtype.scale:
        scale = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        subresources.append({"subresource": "scale", "responseKind": scale, "verbs": list(SUB_VERBS)})
    for name, verbs in rtype.extra_subresources:
        subresources.append({"subresource": name.partition("/")[2], "responseKind": kind, "verbs": list(verbs)})
    if subresources:
        entry["subresources"] = sorted(subresources, key=lambda sub: sub["subresource"])
    return entry


def _names(rtype: ResourceType) -> dict[str, list[str]]:
    """The short names and categories a discovery entry gives, when the type has any."""
    names: dict[str, list[str]] = {}
    if rtype.short_names:
        names["shortNames"] = list(rtype.short_names)
    if rtype.categories:
        names["categories"] = list(rtype.categories)
    return names


def _group_doc(group: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def group_list_doc(registry: Registry) -> dict[str, Any]:
    groups = [_group_doc(g, vs) for g, vs in registry.group_versions().items()]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group_doc(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.group_versions().get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def core_versions_doc(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def version_doc() -> dict[str, Any]:
    return {
        "major": "1",
        "minor": "31",
        "gitVersion": "v1.31.0",
        "gitCommit": "9edcffcde5595e8a5b1a35f88c421764e575afce",
        "gitTreeState": "clean",
        "buildDate": "2024-08-13T07:28:49Z",
        "goVersion": "go1.22.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    }
