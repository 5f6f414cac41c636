"""Whether a restored object is the object the restore sent: equal modulo the fields the server fills in.

A verification restores a backup and reads every object back. The object the restore *sent* is the blob after the
restore's own actions (``core.restore_actions.apply_actions``: namespace mapping, stripped cluster IPs, unbound
claims, the restore label); the object *read back* is sanitized the way a backup sanitizes. What the server adds
(defaults such as ``terminationMessagePath``, a Service's new ``clusterIP``, a claim's ``volumeName``, finalizers a
controller sets) is allowed; what the server *changes or drops* is a difference: a mutating admission webhook that
rewrites an image, a field an older API version silently discards, a value a defaulting rule replaced.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.core.sanitize import sanitize

# Lists the server or a controller may append to: an element missing from them is a difference, an extra one is not.
APPENDABLE_LISTS = frozenset({"metadata.finalizers", "spec.finalizers"})
# Maps read and written as a whole (a ConfigMap's or Secret's data): a key only the server holds is a difference.
EXACT_MAPS = frozenset({"data", "binaryData", "stringData"})
_SHOWN = 80  # characters of a value shown in a difference


@dataclass(frozen=True)
class Difference:
    """One field of the sent object that the read-back object lacks or holds differently."""

    path: str
    kind: Literal["missing", "added", "changed", "length"]
    expected: Any
    actual: Any = None

    def describe(self) -> str:
        if self.kind == "missing":
            return f"{self.path}: sent {_show(self.expected)}, missing on the server"
        if self.kind == "added":
            return f"{self.path}: not sent, the server holds {_show(self.actual)}"
        if self.kind == "length":
            return f"{self.path}: sent {len(self.expected)} items, the server holds {len(self.actual)}"
        return f"{self.path}: sent {_show(self.expected)}, the server holds {_show(self.actual)}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "detail": self.describe()}


def restored_differences(sent: Mapping[str, Any], read_back: Mapping[str, Any]) -> list[Difference]:
    """Every difference between the object a restore sent and the object the server now holds (read back raw)."""
    live = sanitize(dict(read_back), str(read_back.get("kind", sent.get("kind", ""))), str(sent.get("apiVersion", "")))
    live["apiVersion"] = read_back.get("apiVersion", sent.get("apiVersion"))
    return list(_compare(sent, live, ""))


def _compare(expected: Any, actual: Any, path: str) -> Iterator[Difference]:
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            yield Difference(path or "(object)", "changed", expected, actual)
            return
        for key, value in expected.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                yield Difference(where, "missing", value)
            else:
                yield from _compare(value, actual[key], where)
        if path in EXACT_MAPS:
            for key in actual.keys() - expected.keys():
                yield Difference(f"{path}.{key}", "added", None, actual[key])
    elif isinstance(expected, list):
        yield from _compare_list(expected, actual, path)
    elif not _same_scalar(expected, actual):
        yield Difference(path, "changed", expected, actual)


def _compare_list(expected: list[Any], actual: Any, path: str) -> Iterator[Difference]:
    if not isinstance(actual, list):
        yield Difference(path, "changed", expected, actual)
        return
    if path in APPENDABLE_LISTS:
        for item in expected:
            if item not in actual:
                yield Difference(f"{path}[{item!r}]", "missing", item)
        return
    if len(expected) != len(actual):
        yield Difference(path, "length", expected, actual)
        return
    for index, (want, have) in enumerate(zip(expected, actual, strict=True)):
        yield from _compare(want, have, f"{path}[{index}]")


def _same_scalar(expected: Any, actual: Any) -> bool:
    # JSON has one number type: 1 and 1.0 are the same value; True is not 1.
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    return bool(expected == actual)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
