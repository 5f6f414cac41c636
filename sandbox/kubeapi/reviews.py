"""Create-only review APIs (access reviews, token reviews): answered from the server's rules, never stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from sandbox.kubeapi.catalog import ResourceType
from sandbox.kubeapi.errors import ApiError, bad_request

# (verb, group, resource, namespace) -> allowed
Authorizer = Callable[[str, str, str, str | None], bool]

ADMIN_GROUPS = ["kubeadm:cluster-admins", "system:authenticated"]


def review(rtype: ResourceType, version: str, body: Any, user: str, token: str, allowed: Authorizer) -> bytes:
    """The review object with its status filled, as the server answers a create of it (201)."""
    if not isinstance(body, dict):
        raise bad_request(f"the object provided is unrecognized (must be of type {rtype.kind})")
    spec: dict[str, Any] = body["spec"] if isinstance(body.get("spec"), dict) else {}
    status: dict[str, Any]
    if rtype.kind in ("SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview"):
        attrs = spec.get("resourceAttributes")
        if isinstance(attrs, dict):
            ok = allowed(
                str(attrs.get("verb", "")),
                str(attrs.get("group", "")),
                str(attrs.get("resource", "")),
                attrs.get("namespace") or None,
            )
        else:
            ok = isinstance(spec.get("nonResourceAttributes"), dict)
        status = {"allowed": True, "reason": _RBAC_REASON} if ok else {"allowed": False}
    elif rtype.kind == "SelfSubjectRulesReview":
        status = {
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": False,
        }
    elif rtype.kind == "SelfSubjectReview":
        status = {"userInfo": {"username": user, "groups": ADMIN_GROUPS}}
    elif rtype.kind == "TokenReview":
        ok = spec.get("token") == token
        status = {"authenticated": True, "user": {"username": user, "groups": ADMIN_GROUPS}} if ok else {}
        if ok:
            status["audiences"] = ["https://kubernetes.default.svc.cluster.local"]
    else:
        raise ApiError(405, "the server does not allow this method on the requested resource", details={})
    out = {
        "kind": rtype.kind,
        "apiVersion": rtype.api_version(version),
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }
    return orjson.dumps(out)


_RBAC_REASON = (
    'RBAC: allowed by ClusterRoleBinding "kubeadm:cluster-admins" of ClusterRole "cluster-admin" to Group '
    '"kubeadm:cluster-admins"'
)
