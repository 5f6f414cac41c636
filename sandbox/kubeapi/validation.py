"""Validation that answers 422 Invalid like the real server: names, labels, and the required fields of common kinds.

Deliberately partial: it covers what a restore can get wrong (names, labels, selectors, missing required fields),
not the whole of the Kubernetes validation code.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.kubeapi.catalog import DNS1035, LABEL, PATH_SEGMENT, ResourceType
from sandbox.kubeapi.errors import FieldError
from sandbox.kubeapi.selectors import label_value_error, qualified_name_error

_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    "is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def name_problem(name: str, rule: str) -> str | None:
    """Why `name` is not acceptable under the type's naming rule, or None."""
    if rule == PATH_SEGMENT:
        if name in (".", ".."):
            return f"may not be '{name}'"
        bad = next((c for c in ("/", "%") if c in name), None)
        return f"may not contain '{bad}'" if bad else None
    if rule == LABEL:
        return None if len(name) <= 63 and _LABEL_RE.match(name) else _LABEL_MSG
    if rule == DNS1035:
        return None if len(name) <= 63 and _DNS1035_RE.match(name) else _DNS1035_MSG
    if len(name) > 253:
        return "must be no more than 253 characters"
    return None if _SUBDOMAIN_RE.match(name) else _SUBDOMAIN_MSG


def namespace_name_problem(name: str) -> str | None:
    return name_problem(name, LABEL)


def validate_metadata(rtype: ResourceType, meta: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    name = meta.get("name")
    if not name:
        errors.append(FieldError("metadata.name", "Required", detail="name or generateName is required"))
    elif not isinstance(name, str):
        errors.append(FieldError("metadata.name", "Invalid", name, "must be a string"))
    elif problem := name_problem(name, rtype.name_rule):
        errors.append(FieldError("metadata.name", "Invalid", name, problem))
    for key, value in (meta.get("labels") or {}).items():
        if problem := qualified_name_error(key):
            errors.append(FieldError("metadata.labels", "Invalid", key, problem))
        elif not isinstance(value, str) or (problem := label_value_error(value)):
            errors.append(FieldError("metadata.labels", "Invalid", value, problem or "must be a string"))
    for key in meta.get("annotations") or {}:
        if problem := qualified_name_error(key.lower()):
            errors.append(FieldError("metadata.annotations", "Invalid", key, problem))
    return errors


def _containers(spec: Any, path: str) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [FieldError(path, "Required")]
    containers = spec.get("containers")
    if not containers:
        return [FieldError(f"{path}.containers", "Required")]
    errors = []
    for i, c in enumerate(containers):
        if not isinstance(c, dict) or not c.get("name"):
            errors.append(FieldError(f"{path}.containers[{i}].name", "Required"))
        if isinstance(c, dict) and not c.get("image"):
            errors.append(FieldError(f"{path}.containers[{i}].image", "Required"))
    return errors


def _selector_matches(selector: Any, labels: dict[str, str]) -> bool:
    if not isinstance(selector, dict):
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if (
            (op == "In" and (not present or labels[key] not in values))
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def _workload(spec: dict[str, Any], kind: str) -> list[FieldError]:
    errors: list[FieldError] = []
    template = spec.get("template")
    if not isinstance(template, dict):
        return [FieldError("spec.template", "Required")]
    labels = (template.get("metadata") or {}).get("labels") or {}
    selector = spec.get("selector")
    if kind != "Job":
        if not selector:
            errors.append(FieldError("spec.selector", "Required"))
        elif not (selector.get("matchLabels") or selector.get("matchExpressions")):
            errors.append(FieldError("spec.selector", "Invalid", selector, "empty selector is invalid for deployment"))
        elif not _selector_matches(selector, labels):
            detail = "`selector` does not match template `labels`"
            errors.append(FieldError("spec.template.metadata.labels", "Invalid", labels, detail))
    errors.extend(_containers(template.get("spec"), "spec.template.spec"))
    restart = (template.get("spec") or {}).get("restartPolicy")
    if kind == "Job" and restart not in ("OnFailure", "Never"):
        errors.append(
            FieldError(
                "spec.template.spec.restartPolicy", "Unsupported", restart, 'supported values: "OnFailure", "Never"'
            )
        )
    return errors


def _service(spec: dict[str, Any]) -> list[FieldError]:
    kind = spec.get("type", "ClusterIP")
    if kind not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        return [
            FieldError(
                "spec.type",
                "Unsupported",
                kind,
                'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
            )
        ]
    if kind == "ExternalName":
        return [] if spec.get("externalName") else [FieldError("spec.externalName", "Required")]
    if not spec.get("ports") and spec.get("clusterIP") != "None":
        return [FieldError("spec.ports", "Required")]
    return []


def _pvc(spec: dict[str, Any]) -> list[FieldError]:
    errors = []
    if not spec.get("accessModes"):
        errors.append(FieldError("spec.accessModes", "Required"))
    if not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
        errors.append(FieldError("spec.resources[storage]", "Required"))
    return errors


def validate_kind(rtype: ResourceType, obj: dict[str, Any]) -> list[FieldError]:
    """Required fields of the kinds a backup holds most of; other kinds pass."""
    spec: dict[str, Any] = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
    key = (rtype.group, rtype.kind)
    if key in (
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ReplicaSet"),
        ("batch", "Job"),
    ):
        return _workload(spec, rtype.kind)
    if key == ("", "Pod"):
        return _containers(spec, "spec")
    if key == ("", "Service"):
        return _service(spec)
    if key == ("", "PersistentVolumeClaim"):
        return _pvc(spec)
    if key == ("batch", "CronJob"):
        errors = [] if spec.get("schedule") else [FieldError("spec.schedule", "Required")]
        if not spec.get("jobTemplate"):
            errors.append(FieldError("spec.jobTemplate", "Required"))
        return errors
    return []
