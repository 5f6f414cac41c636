"""The sample shop application: its manifests, seeding it into a cluster, and changing it between backups."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from chalicelib.core.resources import Resource
from sandbox.controller_objects import ADOPT_WAIT, seed_controller_objects
from sandbox.seeder import Manifest, Seeder

if TYPE_CHECKING:
    from chalicelib.kube import KubeClient

SAMPLE_APP_DIR = Path(__file__).parent / "sample-app"
WEB_NAMESPACE = "shop"
DATA_NAMESPACE = "shop-data"
# A CRD's name must be <plural>.<group>, so suffixed copies of the app share the one definition.
SHARED_KINDS = frozenset({"CustomResourceDefinition"})
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# Keys whose string value names a cluster-scoped object of this kind, wherever they appear in an object.
_CLUSTER_REFERENCES = {
    "storageClassName": "StorageClass",
    "volumeSnapshotClassName": "VolumeSnapshotClass",
    "volumeName": "PersistentVolume",
    "ingressClassName": "IngressClass",
    "priorityClassName": "PriorityClass",
}
_SUFFIX = re.compile(r"^[a-z0-9-]*$")


@dataclass(frozen=True)
class SeedReport:
    objects: int
    namespaces: list[str]
    by_kind: dict[str, int]
    # "<Kind> <namespace/name>" of objects whose type the cluster does not serve (e.g. no snapshot CRDs installed).
    skipped: list[str] = field(default_factory=list)
    # "<Kind> <namespace/name>" of controller-owned objects found rather than created (a controller or an earlier
    # seeding made them).
    adopted: list[str] = field(default_factory=list)
    # A kube-controller-manager runs: its pods are left to the scheduler and kubelets (no nodeName, no status).
    controllers: bool = False


def load_manifests(suffix: str = "") -> list[Manifest]:
    """Every document of ``sample-app/*.yaml`` in apply order; with ``suffix``, renamed to share a cluster."""
    docs: list[Manifest] = []
    for path in sorted(SAMPLE_APP_DIR.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc)
    return suffix_manifests(docs, suffix) if suffix else docs


def suffix_manifests(docs: Iterable[Manifest], suffix: str) -> list[Manifest]:
    """Copies of ``docs`` with every namespace and cluster-scoped name (except shared kinds) and each reference to them
    suffixed. References to objects not among ``docs`` (e.g. a cluster's own storage class) are left alone."""
    if not _SUFFIX.match(suffix):
        raise ValueError(f"suffix {suffix!r} must be lowercase letters, digits and '-' to stay a valid name")
    docs = list(docs)
    # Objects without metadata.namespace are cluster-scoped: every namespaced object in the app names its namespace.
    defined: dict[str, set[str]] = {}
    for doc in docs:
        if "namespace" not in doc["metadata"] and doc["kind"] not in SHARED_KINDS:
            defined.setdefault(doc["kind"], set()).add(doc["metadata"]["name"])
    namespaces = defined.get("Namespace", set())

    def named(kind: str, name: str) -> str:
        return name + suffix if name in defined.get(kind, ()) else name

    rewrite = _Rewriter(named, namespaces, suffix)
    renamed = []
    for doc in docs:
        new = rewrite(copy.deepcopy(doc))
        meta = new["metadata"]
        if "namespace" not in meta:
            meta["name"] = named(new["kind"], meta["name"])
        if new["kind"] == "Namespace" and NAMESPACE_NAME_LABEL in meta.get("labels", {}):
            meta["labels"][NAMESPACE_NAME_LABEL] = meta["name"]
        renamed.append(new)
    return renamed


class _Rewriter:
    """Renames references to suffixed objects anywhere in an object: namespace fields, class and volume names, role
    references, namespace selectors, and in-cluster DNS names (``<service>.<namespace>.svc``) inside strings."""

    def __init__(self, named: Callable[[str, str], str], namespaces: set[str], suffix: str) -> None:
        self._named = named
        self._suffix = suffix
        self._namespaces = namespaces
        alternatives = "|".join(re.escape(ns) for ns in sorted(namespaces, key=len, reverse=True))
        self._dns = re.compile(rf"\.({alternatives})\.svc\b") if namespaces else None

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self._mapping({key: self(item) for key, item in value.items()})
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, str) and self._dns is not None:
            return self._dns.sub(lambda m: f".{m.group(1)}{self._suffix}.svc", value)
        return value

    def _ns(self, name: str) -> str:
        return self._named("Namespace", name)

    def _mapping(self, data: dict[str, Any]) -> dict[str, Any]:
        if isinstance(data.get("namespace"), str):
            data["namespace"] = self._ns(data["namespace"])
        for key, kind in _CLUSTER_REFERENCES.items():
            if isinstance(data.get(key), str):
                data[key] = self._named(kind, data[key])
        role_ref = data.get("roleRef")
        if isinstance(role_ref, dict) and role_ref.get("kind") == "ClusterRole":
            role_ref["name"] = self._named("ClusterRole", role_ref["name"])
        selector = data.get("namespaceSelector")
        if isinstance(selector, dict):
            labels = selector.get("matchLabels") or {}
            if NAMESPACE_NAME_LABEL in labels:
                labels[NAMESPACE_NAME_LABEL] = self._ns(labels[NAMESPACE_NAME_LABEL])
            for expression in selector.get("matchExpressions") or ():
                if expression.get("key") == NAMESPACE_NAME_LABEL:
                    expression["values"] = [self._ns(v) for v in expression.get("values") or ()]
        return data


# --- seeding -------------------------------------------------------------------------------------------------------


def seed_sample_app(client: KubeClient, suffix: str = "", *, wait: float = ADOPT_WAIT) -> SeedReport:
    """Create the app through ``client`` (a ``chalicelib.kube.KubeClient``), plus the objects its controllers would
    create: those a running controller made (within ``wait`` seconds) are adopted, the rest created. Objects that
    already exist are left as they are, so seeding twice is harmless."""
    seeder = Seeder(client)
    manifests = load_manifests(suffix)
    for manifest in manifests:
        seeder.ensure(manifest)
    namespaces = [m["metadata"]["name"] for m in manifests if m["kind"] == "Namespace"]
    controllers = seed_controller_objects(seeder, WEB_NAMESPACE + suffix, DATA_NAMESPACE + suffix, wait=wait)
    return SeedReport(
        objects=sum(seeder.by_kind.values()),
        namespaces=namespaces,
        by_kind=dict(seeder.by_kind),
        skipped=list(seeder.skipped),
        adopted=list(seeder.adopted),
        controllers=controllers.running,
    )


def remove_sample_app(client: KubeClient, suffix: str = "") -> list[str]:
    """Delete a copy of the app: its namespaces (and so everything in them) and its cluster-scoped objects, except
    the shared CRD, which other copies may still use. Returns what was deleted; missing objects are fine."""
    from chalicelib.kube.errors import NotFound

    seeder = Seeder(client)
    deleted = []
    # Reverse apply order: bindings before the roles they name, namespaces (applied first) last.
    manifests = load_manifests(suffix)
    cluster_scoped = [m for m in manifests if "namespace" not in m["metadata"] and m["kind"] not in SHARED_KINDS]
    for manifest in reversed(cluster_scoped):
        resource = seeder.resource(manifest["apiVersion"], manifest["kind"])
        if resource is None:
            continue
        try:
            client.delete(resource, manifest["metadata"]["name"])
        except NotFound:
            continue
        deleted.append(f"{manifest['kind']} {manifest['metadata']['name']}")
    return deleted


# --- changes between backups ---------------------------------------------------------------------------------------


def mutate_sample_app(client: KubeClient, suffix: str = "") -> list[str]:
    """Change a few objects, as a day of operations would, and say what changed (for an incremental backup demo)."""
    from chalicelib.kube.errors import AlreadyExists, NotFound

    seeder = Seeder(client)
    namespace = WEB_NAMESPACE + suffix
    config_maps = _require(seeder.resource("v1", "ConfigMap"), "ConfigMap")
    deployments = _require(seeder.resource("apps/v1", "Deployment"), "Deployment")
    secrets = _require(seeder.resource("v1", "Secret"), "Secret")
    changes = []

    config = client.get_object(config_maps, "web-config", namespace=namespace) or {}
    old_level = (config.get("data") or {}).get("LOG_LEVEL")
    new_level = "info" if old_level == "debug" else "debug"
    client.patch(config_maps, "web-config", {"data": {"LOG_LEVEL": new_level}}, namespace=namespace)
    changes.append(f"ConfigMap {namespace}/web-config: data.LOG_LEVEL {old_level} -> {new_level}")

    deployment = client.get_object(deployments, "web", namespace=namespace) or {}
    old_replicas = (deployment.get("spec") or {}).get("replicas")
    client.patch(deployments, "web", {"spec": {"replicas": 4}}, namespace=namespace)
    changes.append(f"Deployment {namespace}/web: spec.replicas {old_replicas} -> 4")

    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "promo-api-key", "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "shop"}},
        "type": "Opaque",
        "stringData": {"API_KEY": "sandbox-promo-key"},
    }
    try:
        client.create(secrets, secret, namespace=namespace)
        changes.append(f"Secret {namespace}/promo-api-key: created")
    except AlreadyExists:
        changes.append(f"Secret {namespace}/promo-api-key: already present, unchanged")

    try:
        client.delete(config_maps, "promo-banner", namespace=namespace)
        changes.append(f"ConfigMap {namespace}/promo-banner: deleted")
    except NotFound:
        changes.append(f"ConfigMap {namespace}/promo-banner: already gone")
    return changes


def _require(resource: Resource | None, kind: str) -> Resource:
    if resource is None:
        raise LookupError(f"the cluster does not serve {kind}")
    return resource
