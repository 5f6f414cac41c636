"""Whether a cluster runs kube-controller-manager: what decides if restored workloads can become ready at all.

kube-apiserver alone (envtest, or the Kubernetes API test server) stores Deployments and Jobs but nothing runs them;
a verification on such a cluster checks objects only and says so, instead of waiting for readiness that never comes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.resources import Resource
from chalicelib.kube.errors import KubeError

LEASES = Resource("coordination.k8s.io", "v1", "Lease", "leases", True, frozenset({"get", "list"}))
LEASE_NAME, LEASE_NAMESPACE = "kube-controller-manager", "kube-system"
# kube-controller-manager renews its lease every 2 s; an older lease means it has stopped.
LEASE_FRESH_SECONDS = 60


def _utcnow() -> datetime:
    return datetime.now(UTC)


def controller_manager_running(client: Any, *, clock: Callable[[], datetime] = _utcnow) -> bool:
    """True when kube-controller-manager holds its leader-election lease (kube-system/kube-controller-manager),
    renewed within the last minute. A lease that cannot be read (no permission) counts as running: better to wait
    for a controller that is not there than to skip the checks of one that is."""
    try:
        lease = client.get_object(LEASES, LEASE_NAME, namespace=LEASE_NAMESPACE)
    except KubeError:
        return True
    if lease is None:
        return False
    spec = lease.get("spec") or {}
    renewed = spec.get("renewTime")
    if not renewed:
        return bool(spec.get("holderIdentity"))
    try:
        age = clock() - datetime.fromisoformat(str(renewed).replace("Z", "+00:00"))
    except ValueError:  # a time we cannot read still says some holder renewed it
        return True
    return age.total_seconds() < LEASE_FRESH_SECONDS
