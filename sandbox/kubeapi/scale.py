"""The scale subresource: an autoscaling/v1 Scale view of a workload's replicas."""

from __future__ import annotations

from typing import Any

import orjson

from sandbox.kubeapi import patch
from sandbox.kubeapi.errors import ApiError, bad_request

Obj = dict[str, Any]


def _selector_string(selector: Any) -> str:
    if not isinstance(selector, dict):
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), ",".join(sorted(expr.get("values") or []))
        parts.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }.get(op, key)
        )
    return ",".join(parts)


def scale_of(obj: Obj) -> Obj:
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0), "selector": _selector_string(spec.get("selector"))},
    }


def render(obj: Obj) -> bytes:
    return orjson.dumps(scale_of(obj))


def updated_replicas(obj: Obj, method: str, content_type: str, raw: bytes) -> tuple[int, str | None]:
    """The replicas a PUT or PATCH of the Scale asks for, and the resourceVersion it was based on (if given)."""
    current = scale_of(obj)
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"error decoding request body: {exc}") from exc
    if method == "PUT":
        new = document
    elif content_type == patch.JSON_PATCH:
        new = patch.json_patch(current, document)
    elif isinstance(document, dict):
        new = patch.merge_patch(current, patch.strip_directives(document))
    else:
        raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
    replicas = ((new or {}).get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or replicas < 0:
        raise ApiError(
            422,
            f'Scale.autoscaling "{obj["metadata"]["name"]}" is invalid: spec.replicas: Invalid value: '
            f"{replicas}: must be greater than or equal to 0",
            "Invalid",
        )
    return replicas, ((new or {}).get("metadata") or {}).get("resourceVersion")
