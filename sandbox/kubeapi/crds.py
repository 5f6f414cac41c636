"""CustomResourceDefinitions: validation, defaults, the status the apiextensions controllers write, and the type."""

from __future__ import annotations

from typing import Any

from sandbox.kubeapi.catalog import ALL_VERBS, ResourceType
from sandbox.kubeapi.errors import FieldError
from sandbox.kubeapi.metadata import now
from sandbox.kubeapi.registry import version_priority

GROUP = "apiextensions.k8s.io"
APPROVAL = "api-approved.kubernetes.io"


def _protected(group: str) -> bool:
    return any(group == d or group.endswith("." + d) for d in ("k8s.io", "kubernetes.io"))


def validate(crd: dict[str, Any]) -> list[FieldError]:
    spec: dict[str, Any] = crd["spec"] if isinstance(crd.get("spec"), dict) else {}
    names: dict[str, Any] = spec["names"] if isinstance(spec.get("names"), dict) else {}
    group, plural, kind = spec.get("group", ""), names.get("plural", ""), names.get("kind", "")
    errors: list[FieldError] = []
    if not group:
        errors.append(FieldError("spec.group", "Required"))
    elif "." not in group:
        errors.append(FieldError("spec.group", "Invalid", group, "should be a domain with at least one dot"))
    if not plural:
        errors.append(FieldError("spec.names.plural", "Required"))
    if not kind:
        errors.append(FieldError("spec.names.kind", "Required"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        detail = 'supported values: "Cluster", "Namespaced"'
        errors.append(FieldError("spec.scope", "Unsupported", spec.get("scope"), detail))
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    if sum(1 for v in versions if v.get("storage")) != 1:
        detail = "must have exactly one version marked as storage version"
        errors.append(FieldError("spec.versions", "Invalid", None, detail))
    name = (crd.get("metadata") or {}).get("name", "")
    if group and plural and name != f"{plural}.{group}":
        errors.append(FieldError("metadata.name", "Invalid", name, 'must be spec.names.plural+"."+spec.group'))
    annotations = (crd.get("metadata") or {}).get("annotations") or {}
    if group and _protected(group) and APPROVAL not in annotations:
        errors.append(
            FieldError(
                f"metadata.annotations[{APPROVAL}]",
                "Required",
                None,
                f'protected groups must have approval annotation "{APPROVAL}", see '
                "https://github.com/kubernetes/enhancements/pull/1111",
            )
        )
    return errors


def apply_defaults(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    names = spec["names"]
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})


def established_status(crd: dict[str, Any], old_status: dict[str, Any] | None) -> dict[str, Any]:
    """What the naming and establishing controllers write once the names are accepted."""
    spec = crd["spec"]
    stamp = now()
    conditions = (old_status or {}).get("conditions") or [
        {
            "type": "NamesAccepted",
            "status": "True",
            "lastTransitionTime": stamp,
            "reason": "NoConflicts",
            "message": "no conflicts found",
        },
        {
            "type": "Established",
            "status": "True",
            "lastTransitionTime": stamp,
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
        },
    ]
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    stored = list((old_status or {}).get("storedVersions") or [])
    if storage not in stored:
        stored.append(storage)
    return {"conditions": conditions, "acceptedNames": dict(spec["names"]), "storedVersions": stored}


def resource_type(crd: dict[str, Any]) -> ResourceType:
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served")]
    subresources = [v.get("subresources") or spec.get("subresources") or {} for v in served]
    return ResourceType(
        group=spec["group"],
        versions=tuple(sorted((v["name"] for v in served), key=version_priority)),
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"],
        namespaced=spec["scope"] == "Namespaced",
        verbs=ALL_VERBS,
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        status=any("status" in s for s in subresources),
        scale=any("scale" in s for s in subresources),
        generation=True,
        returns_object=True,
        custom=True,
    )
