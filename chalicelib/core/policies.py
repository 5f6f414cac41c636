"""Backup policies: which cluster, when (cron + timezone), what (scope), volumes, how long to keep, RPO target.

A policy file is a mapping ``{"policies": [...]}`` (YAML or JSON; the caller parses it). Validation collects every
problem with a path to the field (``policies[1] (shop-nightly).schedule.cron: ...``) instead of stopping at the
first, so one edit fixes a file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.dumps import DumpSpec, parse_dumps
from chalicelib.core.errors import CoreError, InvalidPolicy
from chalicelib.core.etcd import EtcdPolicy, parse_etcd_policy
from chalicelib.core.hooks import HookSettings, parse_hooks
from chalicelib.core.schedule import Schedule, parse_schedule
from chalicelib.core.scope import BackupScope
from chalicelib.core.verification import VerifyPolicy, parse_verify
from chalicelib.core.volume_snapshots import VolumeSettings, parse_volumes

# DNS-label style: policy names appear in job ids, metric dimensions and CLI arguments.
POLICY_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# The repository's rule for cluster names (they become S3 key segments).
CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,252}")
RETENTION_FIELDS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
POLICY_FIELDS = frozenset(
    {"name", "cluster", "schedule", "scope", "retention", "rpo_target_minutes", "enabled", "etcd", "volumes", "verify"}
) | {"hooks", "dumps"}
KEEP_ALL = -1  # as restic's "unlimited": every distinct bucket is kept


@dataclass(frozen=True)
class Retention:
    """How many backups to keep per bucket (restic ``forget`` semantics); all zero keeps everything."""

    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0

    def __post_init__(self) -> None:
        problems = [p for name in RETENTION_FIELDS if (p := _count_problem(getattr(self, name), f"retention.{name}"))]
        if problems:
            raise InvalidPolicy(problems)

    @property
    def empty(self) -> bool:
        return all(getattr(self, name) == 0 for name in RETENTION_FIELDS)

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in RETENTION_FIELDS}

    def summary(self) -> str:
        parts = [
            f"{'all' if value == KEEP_ALL else value} {name.removeprefix('keep_')}"
            for name in RETENTION_FIELDS
            if (value := getattr(self, name))
        ]
        return ", ".join(parts) if parts else "keep everything"


@dataclass(frozen=True)
class Policy:
    name: str
    cluster: str
    schedule: Schedule
    scope: BackupScope
    retention: Retention = field(default_factory=Retention)
    rpo_target_minutes: int | None = None
    enabled: bool = True
    etcd: EtcdPolicy = field(default_factory=EtcdPolicy)  # snapshot etcd too (self-managed clusters)
    volumes: VolumeSettings = field(default_factory=VolumeSettings)
    verify: VerifyPolicy | None = None  # restore its backups on a schedule and check them (core/verification.py)
    hooks: HookSettings = field(default_factory=HookSettings)  # run before and after each backup (core/hooks.py)
    dumps: tuple[DumpSpec, ...] = ()  # database dumps by Jobs in the cluster, with every backup (core/dumps.py)

    def to_dict(self) -> dict[str, Any]:
        """The policy as a file holds it (``from_dict`` reads it back)."""
        data: dict[str, Any] = {
            "name": self.name,
            "cluster": self.cluster,
            "schedule": self.schedule.to_dict(),
            "scope": scope_dict(self.scope),
            "retention": self.retention.to_dict(),
            "rpo_target_minutes": self.rpo_target_minutes,
            "enabled": self.enabled,
        }
        if self.etcd.enabled:
            data["etcd"] = self.etcd.to_dict()
        if self.volumes.enabled:
            data["volumes"] = self.volumes.to_dict()
        if self.verify is not None:
            data["verify"] = self.verify.to_dict()
        if self.hooks.enabled or not self.hooks.annotations:
            data["hooks"] = self.hooks.to_dict()
        if self.dumps:
            data["dumps"] = [d.to_dict() for d in self.dumps]
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "policy") -> Policy:
        policy, problems = parse_policy(data, where)
        if policy is None:
            raise InvalidPolicy(problems)
        return policy


def scope_dict(scope: BackupScope) -> dict[str, Any]:
    """A scope as a policy file writes it: only what was set, so reading it back gives the same scope."""
    data: dict[str, Any] = {}
    for key in ("include_namespaces", "exclude_namespaces", "include_resources", "exclude_resources"):
        if getattr(scope, key):
            data[key] = list(getattr(scope, key))
    if scope.label_selector:
        data["label_selector"] = scope.label_selector
    if scope.cluster_scoped is not None:
        data["cluster_scoped"] = scope.cluster_scoped
    return data


def parse_policy(data: Any, where: str = "policy") -> tuple[Policy | None, list[str]]:
    """A policy and no problems, or None and every problem found (each prefixed with ``where``)."""
    if not isinstance(data, Mapping):
        return None, [f"{where}: must be a mapping with name, cluster, schedule, scope"]
    name = data.get("name")
    if isinstance(name, str) and name:
        where = f"{where} ({name})"
    problems: list[str] = []
    unknown = sorted(set(data) - POLICY_FIELDS)
    if unknown:
        problems.append(f"{where}: unknown fields {', '.join(unknown)} (known: {', '.join(sorted(POLICY_FIELDS))})")
    if not isinstance(name, str) or not POLICY_NAME.fullmatch(name):
        problems.append(
            f"{where}.name: {name!r} must be 1-63 lowercase letters, digits or '-', starting and ending alphanumeric"
        )
    cluster = data.get("cluster")
    if not isinstance(cluster, str) or not CLUSTER_NAME.fullmatch(cluster):
        problems.append(f"{where}.cluster: {cluster!r} must be a cluster name (letters, digits and ._:@+=- only)")
    schedule = parse_schedule(data.get("schedule"), f"{where}.schedule", problems)
    scope = _parse_scope(data.get("scope"), f"{where}.scope", problems)
    retention = _parse_retention(data.get("retention"), f"{where}.retention", problems)
    rpo = data.get("rpo_target_minutes")
    if rpo is not None and (isinstance(rpo, bool) or not isinstance(rpo, int) or rpo <= 0):
        problems.append(f"{where}.rpo_target_minutes: must be a positive integer (minutes) or left out; got {rpo!r}")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"{where}.enabled: must be true or false; got {enabled!r}")
    etcd = parse_etcd_policy(data.get("etcd"), f"{where}.etcd", problems)
    volumes, found = parse_volumes(data.get("volumes"), f"{where}.volumes")
    problems.extend(found)
    verify = parse_verify(data.get("verify"), f"{where}.verify", problems)
    hooks, found = parse_hooks(data.get("hooks"), f"{where}.hooks")
    problems.extend(found)
    dumps, found = parse_dumps(data.get("dumps"), f"{where}.dumps")
    problems.extend(found)
    if problems or schedule is None or scope is None or retention is None or etcd is None or volumes is None:
        return None, problems
    if hooks is None:
        return None, problems
    policy = Policy(
        name=str(name),
        cluster=str(cluster),
        schedule=schedule,
        scope=scope,
        retention=retention,
        rpo_target_minutes=rpo,
        enabled=bool(enabled),
        etcd=etcd,
        volumes=volumes,
        verify=verify,
        hooks=hooks,
        dumps=dumps or (),
    )
    return policy, []


def parse_policy_document(doc: Any) -> list[Policy]:
    """Every policy of a policy file, or InvalidPolicy listing every problem of every policy."""
    if isinstance(doc, Mapping) and "policies" in doc:
        extra = sorted(set(doc) - {"policies"})
        if extra:
            raise InvalidPolicy([f"policy file: unknown top-level keys {', '.join(extra)} (only 'policies')"])
        items = doc["policies"]
    else:
        raise InvalidPolicy(["policy file: expected a mapping with a 'policies' list"])
    if not isinstance(items, list) or not items:
        raise InvalidPolicy(["policy file: 'policies' must be a non-empty list"])
    problems: list[str] = []
    policies: list[Policy] = []
    seen: dict[str, int] = {}
    for position, item in enumerate(items):
        policy, found = parse_policy(item, f"policies[{position}]")
        problems.extend(found)
        name = item.get("name") if isinstance(item, Mapping) else None
        if isinstance(name, str) and name:
            # Names are unique across clusters (job ids, metrics and the CLI name a policy alone); case folded so
            # "Shop" and "shop" cannot both exist once one of them is fixed to be valid.
            first = seen.setdefault(name.lower(), position)
            if first != position:
                problems.append(f"policies[{position}] ({name}): name overlaps policies[{first}]; names must be unique")
        if policy is not None:
            policies.append(policy)
    if problems:
        raise InvalidPolicy(problems)
    return policies


def _parse_scope(data: Any, where: str, problems: list[str]) -> BackupScope | None:
    if not isinstance(data, Mapping) or not data:
        problems.append(
            f"{where}: is empty; say what to back up, e.g. {{include_namespaces: ['shop*']}} "
            "or {include_namespaces: ['*']} for every namespace"
        )
        return None
    before = len(problems)
    for key in ("include_namespaces", "exclude_namespaces", "include_resources", "exclude_resources"):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{where}.{key}: must be a list of strings")
        elif not value and key.startswith("include"):
            problems.append(f"{where}.{key}: is an empty list; list at least one pattern or leave the field out")
    if "*" in (data.get("exclude_namespaces") or []):
        problems.append(f"{where}.exclude_namespaces: '*' excludes every namespace, so the policy backs up nothing")
    if len(problems) > before:
        return None
    try:
        return BackupScope.from_dict(dict(data))
    except CoreError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _parse_retention(data: Any, where: str, problems: list[str]) -> Retention | None:
    if data is None:
        return Retention()
    if not isinstance(data, Mapping):
        problems.append(f"{where}: must be a mapping such as {{keep_last: 3, keep_daily: 7}}")
        return None
    unknown = sorted(set(data) - set(RETENTION_FIELDS))
    if unknown:
        problems.append(f"{where}: unknown fields {', '.join(unknown)} (known: {', '.join(RETENTION_FIELDS)})")
    found = [p for name in RETENTION_FIELDS if (p := _count_problem(data.get(name, 0), f"{where}.{name}"))]
    problems.extend(found)
    if found or unknown:
        return None
    return Retention(**{name: int(data.get(name, 0)) for name in RETENTION_FIELDS})


def _count_problem(value: Any, where: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < KEEP_ALL:
        return f"{where}: must be a non-negative integer, or -1 for every bucket; got {value!r}"
    return None
