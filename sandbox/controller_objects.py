"""The sample app's controller-owned objects (ReplicaSets, Pods, revisions, claims, slices): adopted or created."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sandbox.kubelet import node_names, play_kubelet, pod_ip
from sandbox.seeder import Manifest, Seeder

# The alphabet Kubernetes uses for generated name parts (no vowels, so no accidental words).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# How long a running controller-manager gets to create what it owns before seeding creates it instead; it usually
# reacts within a second.
ADOPT_WAIT = 10.0
_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Controllers:
    """Whether a kube-controller-manager runs, and how long to wait for one to create what it owns."""

    running: bool
    wait: float = 0.0


def seed_controller_objects(seeder: Seeder, web_ns: str, data_ns: str, *, wait: float = ADOPT_WAIT) -> Controllers:
    """What the ServiceAccount, Deployment, ReplicaSet, StatefulSet and EndpointSlice controllers would create.

    An object some controller already made (found by its owner's uid, after up to ``wait`` seconds when a
    controller-manager runs) is adopted as it is; only what no controller made is created, with real owner uids.
    Status is reported only where no controller-manager and no real node exist, so nothing fakes a real kubelet."""
    for namespace in (web_ns, data_ns):
        # The serviceaccount controller's `default`: without it kube-apiserver refuses every pod naming no account.
        seeder.ensure(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}}
        )
    controllers = Controllers(True, wait) if controller_manager_running(seeder) else Controllers(False)
    nodes, real_nodes = node_names(seeder)
    # With controllers running, placing pods is the scheduler's job: a pod bound to an invented node is deleted.
    placement = None if controllers.running else nodes
    fake_kubelet = not (controllers.running or real_nodes)

    def record(pods: list[Manifest]) -> list[Manifest]:
        return [play_kubelet(seeder, pod) for pod in pods] if fake_kubelet else pods

    deployment = seeder.get("apps/v1", "Deployment", "web", web_ns)
    web_pods: list[Manifest] = []
    if deployment is not None:
        replica_set = _replica_set_of(seeder, deployment, controllers)
        if replica_set is not None:
            web_pods = record(_replica_set_pods(seeder, replica_set, placement, controllers))
    statefulset = seeder.get("apps/v1", "StatefulSet", "db", data_ns)
    db_pods: list[Manifest] = []
    if statefulset is not None:
        db_pods = record(_statefulset_pods(seeder, statefulset, placement, controllers))
    for service_name, namespace, pods in (("web", web_ns, web_pods), ("db", data_ns, db_pods)):
        service = seeder.get("v1", "Service", service_name, namespace)
        if service is not None:
            slices = _adopted(seeder, "discovery.k8s.io/v1", "EndpointSlice", service, controllers)
            if not slices:
                seeder.ensure(_endpoint_slice(service, pods))
    return controllers


def controller_manager_running(seeder: Seeder) -> bool:
    """True when kube-controller-manager holds a fresh leader-election lease; the test server and kube-apiserver
    alone (envtest) have none. The product's own check (chalicelib.kube.controllers), asked of the seeder's client."""
    from chalicelib.kube.controllers import controller_manager_running as running

    return running(seeder.client)


def _adopted(
    seeder: Seeder, api_version: str, kind: str, owner: Manifest, controllers: Controllers, want: int = 1
) -> list[Manifest]:
    """What ``owner``'s controller made: waits (when controllers run) until ``want`` exist, then adopts them all."""
    deadline = time.monotonic() + controllers.wait
    while True:
        found = seeder.owned(api_version, kind, owner)
        if len(found) >= want or time.monotonic() >= deadline:
            return [seeder.adopt(item) for item in found]
        time.sleep(_POLL_SECONDS)


def _replica_set_of(seeder: Seeder, deployment: Manifest, controllers: Controllers) -> Manifest | None:
    """The Deployment's current ReplicaSet: the highest revision its controller made, or ours."""
    found = _adopted(seeder, "apps/v1", "ReplicaSet", deployment, controllers)
    if found:
        return max(found, key=_revision_number)
    return seeder.ensure(_replica_set(deployment))


def _revision_number(replica_set: Manifest) -> int:
    value = ((replica_set["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")) or "0"
    return int(value) if value.isdigit() else 0


def _replica_set_pods(
    seeder: Seeder, replica_set: Manifest, nodes: list[str] | None, controllers: Controllers
) -> list[Manifest]:
    """The ReplicaSet's pods its controller made, topped up with ours (stable names) to ``spec.replicas``."""
    want = int((replica_set.get("spec") or {}).get("replicas", 1))
    pods = _adopted(seeder, "v1", "Pod", replica_set, controllers, want)
    names = {pod["metadata"]["name"] for pod in pods}
    index = 0
    while len(pods) < want:
        name = _generated_name(replica_set, index)
        if name not in names:
            created = seeder.ensure(_owned_pod(replica_set, name, _node(nodes, index)))
            if created is None:
                break
            pods.append(created)
        index += 1
    return pods


def _statefulset_pods(
    seeder: Seeder, statefulset: Manifest, nodes: list[str] | None, controllers: Controllers
) -> list[Manifest]:
    """Pods ``<set>-0..n-1`` and their claims: those the controller made, and ours for the ordinals it has not."""
    revision_name = _revision_of(seeder, statefulset, controllers)
    meta, spec = statefulset["metadata"], statefulset.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    existing = _statefulset_wait(seeder, statefulset, replicas, controllers)
    pods = []
    for index in range(replicas):
        name = f"{meta['name']}-{index}"
        for claim in _statefulset_claims(statefulset, index):
            seeder.ensure(claim)  # the controller makes a pod's claims first; ensuring them again is harmless
        pod = existing.get(name)
        if pod is not None:
            pods.append(seeder.adopt(pod))
            continue
        created = seeder.ensure(_statefulset_pod(statefulset, revision_name, index, _node(nodes, index)))
        if created is not None:
            pods.append(created)
    return pods


def _revision_of(seeder: Seeder, statefulset: Manifest, controllers: Controllers) -> str:
    """The name of the set's current ControllerRevision (its pods' ``controller-revision-hash``): the newest its
    controller made, or ours."""
    revisions = _adopted(seeder, "apps/v1", "ControllerRevision", statefulset, controllers)
    if revisions:
        return str(max(revisions, key=lambda r: int(r.get("revision") or 0))["metadata"]["name"])
    revision = seeder.ensure(_controller_revision(statefulset))
    return (
        str(revision["metadata"]["name"])
        if revision
        else f"{statefulset['metadata']['name']}-{_template_hash(statefulset)}"
    )


def _statefulset_wait(
    seeder: Seeder, statefulset: Manifest, replicas: int, controllers: Controllers
) -> dict[str, Manifest]:
    """The set's pods by name once its controller has made all it will: with ``OrderedReady`` it makes ordinal n+1
    only when n is Running and Ready, which never happens without a kubelet, so waiting for more is pointless."""
    ordered = (statefulset.get("spec") or {}).get("podManagementPolicy", "OrderedReady") == "OrderedReady"
    name = statefulset["metadata"]["name"]
    deadline = time.monotonic() + controllers.wait
    while True:
        pods = {pod["metadata"]["name"]: pod for pod in seeder.owned("v1", "Pod", statefulset)}
        expected = replicas
        if ordered:
            expected = next((i + 1 for i in range(replicas) if not _ready(pods.get(f"{name}-{i}"))), replicas)
        if all(f"{name}-{i}" in pods for i in range(expected)) or time.monotonic() >= deadline:
            return pods
        time.sleep(_POLL_SECONDS)


def _ready(pod: Manifest | None) -> bool:
    conditions = ((pod or {}).get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _node(nodes: list[str] | None, index: int) -> str | None:
    return nodes[index % len(nodes)] if nodes else None


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


def _pod(owner: Manifest, name: str, labels: dict[str, str], spec: dict[str, Any], node: str | None) -> Manifest:
    namespace = owner["metadata"]["namespace"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [_owner(owner)],
        },
        "spec": {**spec, "nodeName": node} if node else spec,
    }
    # As the controllers do, a pod carries its template's annotations (e.g. Velero's hook annotations).
    annotations = (owner["spec"]["template"].get("metadata") or {}).get("annotations")
    if annotations:
        pod["metadata"]["annotations"] = dict(annotations)
    return pod


def _owned_pod(replica_set: Manifest, name: str, node: str | None) -> Manifest:
    template = replica_set["spec"]["template"]
    labels = dict(template["metadata"]["labels"])
    pod = _pod(replica_set, name, labels, copy.deepcopy(template["spec"]), node)
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


def _statefulset_pod(statefulset: Manifest, revision: str, index: int, node: str | None) -> Manifest:
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
    return _pod(statefulset, name, labels, pod_spec, node)


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
    return (pod.get("status") or {}).get("podIP") or pod_ip(pod["metadata"]["namespace"], pod["metadata"]["name"])


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
