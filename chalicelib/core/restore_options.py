"""What a restore restores, where to, and how it treats objects that already exist."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

from chalicelib.core.errors import CoreError
from chalicelib.core.resources import Resource
from chalicelib.core.scope import ALWAYS_SKIPPED
from chalicelib.core.selectors import LabelSelector, parse_label_selector

ExistingPolicy = Literal["skip", "update"]
EXISTING_POLICIES: tuple[ExistingPolicy, ...] = ("skip", "update")

RESTORE_ID_LABEL = "lifeboat.io/restore-id"
# On every object a verification restores, so its cleanup and the janitor find them by label.
VERIFICATION_LABEL = "lifeboat.io/verification"
BACKUP_ID_ANNOTATION = "lifeboat.io/backup-id"

# RFC 1123 label: what a namespace name must be.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# A label value: the restore id ends up in one.
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

_LIST_FIELDS = ("include_namespaces", "exclude_namespaces", "include_resources", "exclude_resources")
_BOOL_FIELDS = ("preserve_node_ports", "restore_pvcs_from_snapshots", "dry_run")
_KNOWN_FIELDS = frozenset(
    {"namespace_mapping", "label_selector", "existing_policy", "restore_id", *_LIST_FIELDS, *_BOOL_FIELDS}
)


class InvalidRestoreOptions(CoreError):
    """Restore options are malformed; the message names the field and the bad value."""


@dataclass(frozen=True)
class RestoreOptions:
    # source namespace -> target namespace; the filters below name *source* namespaces, as the backup does.
    namespace_mapping: Mapping[str, str] = field(default_factory=dict)
    include_namespaces: tuple[str, ...] = ()  # globs; empty means every namespace of the backup
    exclude_namespaces: tuple[str, ...] = ()
    include_resources: tuple[str, ...] = ()  # plural, plural.group or Kind; empty means every type
    exclude_resources: tuple[str, ...] = ()
    label_selector: str = ""
    existing_policy: ExistingPolicy = "skip"
    preserve_node_ports: bool = False
    restore_pvcs_from_snapshots: bool = True
    restore_id: str | None = None
    dry_run: bool = False
    # Set by a verification run only, never from a request: it labels every restored object for cleanup.
    verification_id: str | None = None

    def __post_init__(self) -> None:
        # Frozen all the way down: a caller's dict or list must not change the options after the fact.
        object.__setattr__(self, "namespace_mapping", MappingProxyType(dict(self.namespace_mapping)))
        for name in _LIST_FIELDS:
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check_mapping(self.namespace_mapping)
        for name in ("include_namespaces", "exclude_namespaces"):
            for pattern in getattr(self, name):
                if not isinstance(pattern, str) or not pattern or any(c.isspace() for c in pattern):
                    raise InvalidRestoreOptions(f"{name}: invalid namespace pattern {pattern!r}")
        for name in ("include_resources", "exclude_resources"):
            for token in getattr(self, name):
                if not isinstance(token, str) or not token.strip():
                    raise InvalidRestoreOptions(f"{name}: invalid resource name {token!r}")
        if self.existing_policy not in EXISTING_POLICIES:
            raise InvalidRestoreOptions(
                f"existing_policy must be one of {', '.join(EXISTING_POLICIES)}, not {self.existing_policy!r}"
            )
        for name in ("restore_id", "verification_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value or not _LABEL_VALUE.match(value)):
                raise InvalidRestoreOptions(
                    f"{name} {value!r} cannot be a label value "
                    "(at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
                )
        try:
            parse_label_selector(self.label_selector)
        except CoreError as exc:
            raise InvalidRestoreOptions(f"label_selector: {exc}") from exc

    # -- wire form -----------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RestoreOptions:
        """Options from a JSON request or a CLI; unknown fields and wrong types are refused, not ignored."""
        data = dict(data or {})
        unknown = set(data) - _KNOWN_FIELDS
        if unknown:
            raise InvalidRestoreOptions(f"unknown restore options: {', '.join(sorted(unknown))}")
        kwargs: dict[str, Any] = {"namespace_mapping": parse_namespace_mapping(data.get("namespace_mapping"))}
        for name in _LIST_FIELDS:
            kwargs[name] = _string_tuple(name, data.get(name))
        for name in _BOOL_FIELDS:
            if name in data and data[name] is not None:
                if not isinstance(data[name], bool):
                    raise InvalidRestoreOptions(f"{name} must be true or false, not {data[name]!r}")
                kwargs[name] = data[name]
        for name in ("label_selector", "existing_policy", "restore_id"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise InvalidRestoreOptions(f"{name} must be a string, not {value!r}")
        kwargs["label_selector"] = data.get("label_selector") or ""
        kwargs["existing_policy"] = data.get("existing_policy") or "skip"
        kwargs["restore_id"] = data.get("restore_id") or None
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace_mapping": dict(self.namespace_mapping),
            "include_namespaces": list(self.include_namespaces),
            "exclude_namespaces": list(self.exclude_namespaces),
            "include_resources": list(self.include_resources),
            "exclude_resources": list(self.exclude_resources),
            "label_selector": self.label_selector,
            "existing_policy": self.existing_policy,
            "preserve_node_ports": self.preserve_node_ports,
            "restore_pvcs_from_snapshots": self.restore_pvcs_from_snapshots,
            "restore_id": self.restore_id,
            "dry_run": self.dry_run,
        }

    # -- questions the plan asks ---------------------------------------------------------------------------------

    @cached_property
    def selector(self) -> LabelSelector:
        """The label selector, parsed once (the plan asks for every object)."""
        return parse_label_selector(self.label_selector)

    def target_namespace(self, namespace: str) -> str:
        return self.namespace_mapping.get(namespace, namespace)

    @cached_property
    def _answers(self) -> dict[object, bool]:
        """``namespace_selected`` and ``resource_selected`` by what they were asked: a restore asks for every object
        of its backup, several times, about a few namespaces and types (the patterns cost ~5 µs an answer)."""
        return {}

    def namespace_selected(self, namespace: str) -> bool:
        """Whether a *source* namespace is in the restore."""
        answer = self._answers.get(namespace)
        return self._remember(namespace, self._namespace_selected) if answer is None else answer

    def _remember(self, key: Any, question: Callable[[Any], bool]) -> bool:
        answer = self._answers[key] = question(key)
        return answer

    def _namespace_selected(self, namespace: str) -> bool:
        if self.include_namespaces and not any(fnmatch.fnmatchcase(namespace, p) for p in self.include_namespaces):
            return False
        return not any(fnmatch.fnmatchcase(namespace, p) for p in self.exclude_namespaces)

    def resource_selected(self, resource: Resource) -> bool:
        """Whether a resource type is in the restore; types nobody should restore are never selected."""
        answer = self._answers.get(resource)
        return self._remember(resource, self._resource_selected) if answer is None else answer

    def _resource_selected(self, resource: Resource) -> bool:
        if resource.group_resource in ALWAYS_SKIPPED:
            return False
        # Namespaces stay in unless excluded by name: the objects asked for need their namespace.
        listed = not self.include_resources or any(resource.matches(t) for t in self.include_resources)
        if not listed and resource.group_resource != "namespaces":
            return False
        return not any(resource.matches(t) for t in self.exclude_resources)


def parse_namespace_mapping(value: Any) -> dict[str, str]:
    """``{"a": "b"}``, ``["a:b", "c:d"]`` or ``"a:b,c:d"`` (as a CLI flag gives it) -> ``{"a": "b", "c": "d"}``."""
    if value is None or value == "" or value == {}:
        return {}
    if isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise InvalidRestoreOptions(f"namespace_mapping must be an object or 'a:b' strings, not {value!r}")
        pairs = []
        for item in items:
            if not isinstance(item, str) or item.count(":") != 1:
                raise InvalidRestoreOptions(f"namespace_mapping entry {item!r} is not 'source:target'")
            source, target = item.split(":")
            pairs.append((source.strip(), target.strip()))
    mapping: dict[str, str] = {}
    for source, target in pairs:
        if source in mapping:
            raise InvalidRestoreOptions(f"namespace_mapping names {source!r} twice")
        mapping[source] = target
    _check_mapping(mapping)
    return mapping


def _check_mapping(mapping: Mapping[str, str]) -> None:
    targets: dict[str, str] = {}
    for source, target in mapping.items():
        for role, name in (("source", source), ("target", target)):
            if not isinstance(name, str) or not _DNS_LABEL.match(name):
                raise InvalidRestoreOptions(f"namespace_mapping {role} {name!r} is not a valid namespace name")
        if target in targets:
            # Two namespaces merged into one would make same-named objects overwrite or shadow each other.
            raise InvalidRestoreOptions(f"namespace_mapping maps both {targets[target]!r} and {source!r} to {target!r}")
        targets[target] = source


def _string_tuple(name: str, value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidRestoreOptions(f"{name} must be a list of strings, not {value!r}")
    return tuple(v.strip() for v in value if v.strip())
