"""What "ready" means for a restored workload, read from its status the way kubectl rollout status reads it, and the
Jobs a verification runs for the user's checks.

Only where controllers run: kube-apiserver alone never fills these statuses, so a verification there checks objects
only (``chalicelib/kube/controllers.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.core.verification import Check

# (group, plural) of the kinds whose readiness a verification waits for.
WATCHED = frozenset(
    {
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("", "persistentvolumeclaims"),
        ("batch", "jobs"),
    }
)
DEFAULT_CHECK_IMAGE = "curlimages/curl:8.11.1"  # the HTTP probe's image: curl, and nothing else
CHECK_LABEL = "lifeboat.io/verification-check"


@dataclass(frozen=True)
class Target:
    """A restored object to wait for: its type (group, version, plural, kind), where it is, and why it is watched."""

    group: str
    version: str
    plural: str
    kind: str
    namespace: str
    name: str
    check: str = ""  # the user's check this Job runs, when it is one

    @property
    def key(self) -> str:
        gr = f"{self.plural}.{self.group}" if self.group else self.plural
        return f"{gr}/{self.namespace}/{self.name}"

    def to_dict(self) -> dict[str, str]:
        return {
            "group": self.group,
            "version": self.version,
            "plural": self.plural,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "check": self.check,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        return cls(**{k: str(data.get(k, "")) for k in cls.__dataclass_fields__})


def targets(created: Iterable[tuple[str, str, str, str, str | None, str]]) -> list[Target]:
    """The watched objects among created ones, given as (group, version, plural, kind, namespace, name)."""
    return [
        Target(group, version, plural, kind, namespace, name)
        for group, version, plural, kind, namespace, name in created
        if (group, plural) in WATCHED and namespace
    ]


def readiness(target: Target, obj: dict[str, Any] | None) -> tuple[bool | None, str]:
    """(True, "") when ready, (None, what it waits for) while not yet, (False, why) when it never will be."""
    if obj is None:
        return False, f"{target.key} is gone from the cluster"
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    plural = target.plural
    if plural == "persistentvolumeclaims":
        phase = status.get("phase")
        if phase == "Bound":
            return True, ""
        if phase == "Lost":
            return False, f"{target.key} lost its volume"
        return None, f"{target.key} is {phase or 'Pending'}, not Bound"
    if plural == "jobs":
        return _job(target, spec, status)
    meta = obj.get("metadata") or {}
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 1):
        return None, f"{target.key} is not yet observed by its controller"
    if plural == "daemonsets":
        want, have = int(status.get("desiredNumberScheduled") or 0), int(status.get("numberAvailable") or 0)
    else:
        want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        have = int(status.get("availableReplicas" if plural == "deployments" else "readyReplicas") or 0)
    if have >= want:
        return True, ""
    return None, f"{target.key} has {have} of {want} replicas ready"


def _job(target: Target, spec: dict[str, Any], status: dict[str, Any]) -> tuple[bool | None, str]:
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return True, ""
        if condition.get("type") == "Failed":
            why = condition.get("message") or condition.get("reason") or "failed"
            return False, f"{target.key} failed: {why}"
    want = int(spec.get("completions") or 1)
    if int(status.get("succeeded") or 0) >= want:
        return True, ""
    return None, f"{target.key} has not completed ({int(status.get('succeeded') or 0)} of {want} succeeded)"


def check_job(check: Check, *, namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """The Job that runs one of the user's checks in the scratch namespace ``namespace`` (the check's namespace,
    mapped): an HTTP probe of a restored Service by its in-cluster name, or the user's own image."""
    if check.type == "http":
        url = f"http://{check.service}.{namespace}.svc:{check.port}{check.path}"
        script = (
            f"code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 --retry 5 --retry-all-errors "
            f"--retry-delay 3 '{url}'); echo \"GET {url}: $code\"; test \"$code\" = '{check.expect_status}'"
        )
        container: dict[str, Any] = {"name": "probe", "image": DEFAULT_CHECK_IMAGE, "command": ["sh", "-c", script]}
    else:
        container = {"name": "check", "image": check.image}
        if check.command:
            container["command"] = list(check.command)
        if check.args:
            container["args"] = list(check.args)
    container["securityContext"] = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 65532}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": {**labels, CHECK_LABEL: "true"}},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": check.timeout_s,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": {**labels, CHECK_LABEL: "true"}},
                "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [container]},
            },
        },
    }
