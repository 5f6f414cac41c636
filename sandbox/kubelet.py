"""Stand-ins for the scheduler and kubelets where a cluster has neither: invented nodes, pods reported running."""

from __future__ import annotations

import hashlib

from sandbox.seeder import Manifest, Seeder

_FALLBACK_NODES = ("ip-10-0-1-17.ec2.internal", "ip-10-0-2-33.ec2.internal")


def pod_ip(namespace: str, name: str) -> str:
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return f"10.244.{digest[0]}.{digest[1] % 253 + 2}"


def node_names(seeder: Seeder) -> tuple[list[str], bool]:
    """The cluster's nodes and True, or invented names and False when it has none (the test server): a pod bound
    to a missing node on a real cluster is deleted by the pod garbage collector."""
    from chalicelib.kube.errors import KubeError

    resource = seeder.resource("v1", "Node")
    if resource is not None:
        try:
            listing = seeder.client.request("GET", resource.collection_path())
        except KubeError:  # e.g. no permission to list nodes: invented names still serve the test server
            listing = None
        names = sorted(item["metadata"]["name"] for item in (listing or {}).get("items") or ())
        if names:
            return names, True
    return list(_FALLBACK_NODES), False


def play_kubelet(seeder: Seeder, pod: Manifest) -> Manifest:
    """Report ``pod`` running, as its node's kubelet would. Only for invented nodes: a real kubelet owns the status
    of its pods, and the API server refuses to change a pod IP once set."""
    from chalicelib.kube.client import PATCH_TYPES

    resource = seeder.resource("v1", "Pod")
    meta = pod["metadata"]
    node = (pod.get("spec") or {}).get("nodeName")
    if resource is None or not node or (pod.get("status") or {}).get("podIP"):
        return pod  # no kubelet runs a pod no node was assigned, and a reported IP never changes
    ip = pod_ip(meta["namespace"], meta["name"])
    node_ip = pod_ip("node", node)
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
            for c in pod["spec"].get("containers") or ()
        ],
    }
    path = resource.object_path(meta["name"], meta["namespace"]) + "/status"
    return seeder.client.request("PATCH", path, body={"status": status}, content_type=PATCH_TYPES["merge"])
