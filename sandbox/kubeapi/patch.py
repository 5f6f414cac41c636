"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902); strategic merge is served as a merge patch."""

from __future__ import annotations

import copy
from typing import Any

from sandbox.kubeapi.errors import ApiError

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE, APPLY, STRATEGIC)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_merge(target: Any, patch: Any) -> Any:
    """Server-side apply, approximated: the applied config merges in; fields it omits are kept."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return copy.deepcopy(patch)
    result = dict(target)
    for key, value in patch.items():
        result[key] = apply_merge(result.get(key), value)
    return result


def strip_directives(patch: Any) -> Any:
    """Drop strategic-merge directives ($patch, $setElementOrder/..., $retainKeys) that a merge patch lacks."""
    if isinstance(patch, dict):
        return {k: strip_directives(v) for k, v in patch.items() if not k.startswith("$")}
    if isinstance(patch, list):
        return [strip_directives(v) for v in patch]
    return patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f'JSON pointer "{path}" must start with "/"', "Invalid")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        node = _child(node, part, path)
    return node, parts[-1]


def _child(node: Any, part: str, path: str) -> Any:
    if isinstance(node, dict):
        if part not in node:
            raise _missing(path)
        return node[part]
    if isinstance(node, list):
        index = _index(node, part, path)
        if index >= len(node):
            raise _missing(path)
        return node[index]
    raise _missing(path)


def _index(node: list[Any], part: str, path: str) -> int:
    if part == "-":
        return len(node)
    if not part.isdigit():
        raise ApiError(422, f"invalid array index {part!r} in {path}", "Invalid")
    return int(part)


def _missing(path: str) -> ApiError:
    message = f"the server rejected our request due to an error in our request: missing path {path}"
    return ApiError(422, message, "Invalid")


def _get(doc: Any, path: str) -> Any:
    node = doc
    for part in _pointer(path):
        node = _child(node, part, path)
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent, last = _parent(doc, parts, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        index = _index(parent, last, path)
        if index > len(parent):
            raise _missing(path)
        parent.insert(index, value)
    else:
        raise _missing(path)
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    parent, last = _parent(doc, parts, path)
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise _missing(path)
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 on a copy of target; a failed `test` or a bad path answers 422 as the real server does."""
    if not isinstance(operations, list):
        raise ApiError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(422, "the server rejected our request due to an error in our request", "Invalid")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace" and path == "":
            doc = copy.deepcopy(op.get("value"))
        elif kind == "replace":
            _get(doc, path)
            doc = _add(_remove(doc, path), path, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            value = copy.deepcopy(_get(doc, op.get("from", "")))
            if kind == "move":
                doc = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise ApiError(422, f"testing value {path} failed: test failed", "Invalid")
        else:
            raise ApiError(422, f"Unexpected kind: {kind}", "Invalid")
    return doc
