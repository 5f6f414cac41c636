"""The sample shop application: its manifests, seeding it into a cluster, and changing it between backups."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from chalicelib.core.resources import Resource

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
# The alphabet Kubernetes uses for generated name parts (no vowels, so no accidental words).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FALLBACK_NODES = ("ip-10-0-1-17.ec2.internal", "ip-10-0-2-33.ec2.internal")

Manifest = dict[str, Any]


@dataclass(frozen=True)
class SeedReport:
    objects: int
    namespaces: list[str]
    by_kind: dict[str, int]
    # "<Kind> <namespace/name>" of objects whose type the cluster does not serve (e.g. no snapshot CRDs installed).
    skipped: list[str] = field(default_factory=list)


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


def seed_sample_app(client: KubeClient, suffix: str = "") -> SeedReport:
    """Create the app through ``client`` (a ``chalicelib.kube.KubeClient``), plus the objects its controllers would
    create. Objects that already exist are left as they are, so seeding twice is harmless."""
    seeder = _Seeder(client)
    manifests = load_manifests(suffix)
    for manifest in manifests:
        seeder.ensure(manifest)
    namespaces = [m["metadata"]["name"] for m in manifests if m["kind"] == "Namespace"]
    _seed_controller_objects(seeder, WEB_NAMESPACE + suffix, DATA_NAMESPACE + suffix)
    return SeedReport(
        objects=sum(seeder.by_kind.values()),
        namespaces=namespaces,
        by_kind=dict(seeder.by_kind),
        skipped=list(seeder.skipped),
    )


class _Seeder:
    """Creates objects, mapping apiVersion/kind to a resource type through discovery."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.by_kind: Counter[str] = Counter()
        self.skipped: list[str] = []
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
            self.skipped.append(f"{kind} {_display(meta)}")
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

    def node_names(self) -> tuple[list[str], bool]:
        """The cluster's nodes and True, or invented names and False when it has none (the test server): a pod bound
        to a missing node on a real cluster is deleted by the pod garbage collector."""
        from chalicelib.kube.errors import KubeError

        resource = self.resource("v1", "Node")
        if resource is not None:
            try:
                listing = self.client.request("GET", resource.collection_path())
            except KubeError:  # e.g. no permission to list nodes: invented names still serve the test server
                listing = None
            names = sorted(item["metadata"]["name"] for item in (listing or {}).get("items") or ())
            if names:
                return names, True
        return list(_FALLBACK_NODES), False

    def play_kubelet(self, pod: Manifest) -> Manifest:
        """Report ``pod`` running, as its node's kubelet would. Only for invented nodes: a real kubelet owns the status
        of its pods, and the API server refuses to change a pod IP once set."""
        from chalicelib.kube.client import PATCH_TYPES

        resource = self.resource("v1", "Pod")
        meta = pod["metadata"]
        if resource is None or (pod.get("status") or {}).get("podIP"):
            return pod
        ip = _pod_ip(meta["namespace"], meta["name"])
        node_ip = _pod_ip("node", pod["spec"]["nodeName"])
        conditions = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        status = {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": node_ip,
            "hostIPs": [{"ip": node_ip}],
            "startTime": meta.get("creationTimestamp"),
            "conditions": [
                {"type": c, "status": "True", "lastTransitionTime": meta.get("creationTimestamp")} for c in conditions
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": meta.get("creationTimestamp")}},
                }
                for c in pod["spec"]["containers"]
            ],
        }
        path = resource.object_path(meta["name"], meta["namespace"]) + "/status"
        return self.client.request("PATCH", path, body={"status": status}, content_type=PATCH_TYPES["merge"])


def _seed_controller_objects(seeder: _Seeder, web_ns: str, data_ns: str) -> None:
    """What the Deployment, ReplicaSet, StatefulSet and EndpointSlice controllers would create."""
    nodes, real_nodes = seeder.node_names()

    def record(pod: Manifest | None, into: list[Manifest]) -> None:
        if pod is not None:
            into.append(pod if real_nodes else seeder.play_kubelet(pod))

    deployment = seeder.get("apps/v1", "Deployment", "web", web_ns)
    web_pods: list[Manifest] = []
    if deployment is not None:
        replica_set = seeder.ensure(_replica_set(deployment))
        if replica_set is not None:
            for index in range(replica_set["spec"]["replicas"]):
                record(
                    seeder.ensure(_owned_pod(replica_set, _generated_name(replica_set, index), nodes, index)), web_pods
                )
    statefulset = seeder.get("apps/v1", "StatefulSet", "db", data_ns)
    db_pods: list[Manifest] = []
    if statefulset is not None:
        revision = seeder.ensure(_controller_revision(statefulset))
        revision_name = revision["metadata"]["name"] if revision else f"db-{_template_hash(statefulset)}"
        for index in range(statefulset["spec"]["replicas"]):
            for claim in _statefulset_claims(statefulset, index):
                seeder.ensure(claim)
            record(seeder.ensure(_statefulset_pod(statefulset, revision_name, index, nodes)), db_pods)
    for service_name, namespace, pods in (("web", web_ns, web_pods), ("db", data_ns, db_pods)):
        service = seeder.get("v1", "Service", service_name, namespace)
        if service is not None:
            seeder.ensure(_endpoint_slice(service, pods))


def _owner(owner: Manifest) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _safe_encode(data: bytes, length: int) -> str:
    return "".join(_NAME_ALPHABET[b % len(_NAME_ALPHABET)] for b in data[:length])


def _template_hash(owner: Manifest) -> str:
    """Stands in for the controllers' FNV hash of the pod template: stable, and different when the template is."""
    canonical = json.dumps(owner["spec"]["template"], sort_keys=True, separators=(",", ":")).encode()
    return _safe_encode(hashlib.sha256(canonical).digest(), 10)


def _generated_name(owner: Manifest, index: int) -> str:
    """``<owner>-<5 chars>`` like generateName, but stable so seeding twice names the same pods."""
    seed = f"{owner['metadata']['namespace']}/{owner['metadata']['name']}/{index}".encode()
    return f"{owner['metadata']['name']}-{_safe_encode(hashlib.sha256(seed).digest(), 5)}"


def _replica_set(deployment: Manifest) -> Manifest:
    template_hash = _template_hash(deployment)
    template = copy.deepcopy(deployment["spec"]["template"])
    template["metadata"].setdefault("labels", {})["pod-template-hash"] = template_hash
    selector = copy.deepcopy(deployment["spec"]["selector"])
    selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash
    replicas = deployment["spec"].get("replicas", 1)
    meta = deployment["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-{template_hash}",
            "namespace": meta["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {
                "deployment.kubernetes.io/desired-replicas": str(replicas),
                "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                "deployment.kubernetes.io/revision": "1",
            },
            "ownerReferences": [_owner(deployment)],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": template},
    }


def _pod_ip(namespace: str, name: str) -> str:
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return f"10.244.{digest[0]}.{digest[1] % 253 + 2}"


def _pod(owner: Manifest, name: str, labels: dict[str, str], spec: dict[str, Any], node: str) -> Manifest:
    namespace = owner["metadata"]["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [_owner(owner)],
        },
        "spec": {**spec, "nodeName": node},
    }


def _owned_pod(replica_set: Manifest, name: str, nodes: list[str], index: int) -> Manifest:
    template = replica_set["spec"]["template"]
    labels = dict(template["metadata"]["labels"])
    pod = _pod(replica_set, name, labels, copy.deepcopy(template["spec"]), nodes[index % len(nodes)])
    pod["metadata"]["generateName"] = f"{replica_set['metadata']['name']}-"
    return pod


def _controller_revision(statefulset: Manifest) -> Manifest:
    meta = statefulset["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"{meta['name']}-{_template_hash(statefulset)}",
            "namespace": meta["namespace"],
            "labels": dict(statefulset["spec"]["template"]["metadata"].get("labels") or {}),
            "ownerReferences": [_owner(statefulset)],
        },
        "data": {"spec": {"template": statefulset["spec"]["template"]}},
        "revision": 1,
    }


def _statefulset_claims(statefulset: Manifest, index: int) -> list[Manifest]:
    """The claims ``<template>-<set>-<index>``; like the controller, not owned by the set, so they outlive it."""
    claims = []
    meta = statefulset["metadata"]
    for template in statefulset["spec"].get("volumeClaimTemplates") or ():
        claim = copy.deepcopy(template)
        claim.setdefault("apiVersion", "v1")
        claim.setdefault("kind", "PersistentVolumeClaim")
        claim["metadata"] = {
            "name": f"{template['metadata']['name']}-{meta['name']}-{index}",
            "namespace": meta["namespace"],
            "labels": {**(template["metadata"].get("labels") or {}), **statefulset["spec"]["selector"]["matchLabels"]},
        }
        claim.pop("status", None)
        claims.append(claim)
    return claims


def _statefulset_pod(statefulset: Manifest, revision: str, index: int, nodes: list[str]) -> Manifest:
    meta, spec = statefulset["metadata"], statefulset["spec"]
    name = f"{meta['name']}-{index}"
    labels = {
        **(spec["template"]["metadata"].get("labels") or {}),
        "controller-revision-hash": revision,
        "statefulset.kubernetes.io/pod-name": name,
        "apps.kubernetes.io/pod-index": str(index),
    }
    pod_spec = copy.deepcopy(spec["template"]["spec"])
    pod_spec["hostname"] = name
    pod_spec["subdomain"] = spec["serviceName"]
    claim_volumes = [
        {"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": f"{t['metadata']['name']}-{name}"}}
        for t in spec.get("volumeClaimTemplates") or ()
    ]
    pod_spec["volumes"] = claim_volumes + (pod_spec.get("volumes") or [])
    return _pod(statefulset, name, labels, pod_spec, nodes[index % len(nodes)])


def _endpoint_slice(service: Manifest, pods: list[Manifest]) -> Manifest:
    meta = service["metadata"]
    ports = [
        {"name": p.get("name", ""), "port": _target_port(p, pods), "protocol": p.get("protocol", "TCP")}
        for p in service["spec"].get("ports") or ()
    ]
    endpoints = [
        {
            "addresses": [_address(pod)],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": pod["spec"].get("nodeName"),
            "targetRef": {
                "kind": "Pod",
                "namespace": pod["metadata"]["namespace"],
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"].get("uid", ""),
            },
        }
        for pod in pods
    ]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": _generated_name(service, 0),
            "namespace": meta["namespace"],
            "labels": {
                "kubernetes.io/service-name": meta["name"],
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            "ownerReferences": [_owner(service)],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


def _address(pod: Manifest) -> str:
    """The pod's IP, or a stand-in until a kubelet reports one (a real endpoint controller then corrects it)."""
    return (pod.get("status") or {}).get("podIP") or _pod_ip(pod["metadata"]["namespace"], pod["metadata"]["name"])


def _target_port(service_port: dict[str, Any], pods: list[Manifest]) -> int:
    """A named targetPort resolved against the pods' container ports, as the endpoint controllers do."""
    target = service_port.get("targetPort", service_port["port"])
    if isinstance(target, int):
        return target
    for pod in pods:
        for container in pod["spec"].get("containers") or ():
            for port in container.get("ports") or ():
                if port.get("name") == target:
                    return int(port["containerPort"])
    return int(service_port["port"])


def _display(meta: dict[str, Any]) -> str:
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


def remove_sample_app(client: KubeClient, suffix: str = "") -> list[str]:
    """Delete a copy of the app: its namespaces (and so everything in them) and its cluster-scoped objects, except
    the shared CRD, which other copies may still use. Returns what was deleted; missing objects are fine."""
    from chalicelib.kube.errors import NotFound

    seeder = _Seeder(client)
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

    seeder = _Seeder(client)
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
