"""etcd values: where a self-managed cluster's etcd is (endpoints, TLS secret), and a policy's etcd block."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chalicelib.core.errors import CoreError, InvalidPolicy
from chalicelib.core.schedule import Schedule, parse_schedule

# What a registration records for a cluster whose control plane the provider runs (EKS): no etcd to reach.
MANAGED_CONTROL_PLANE = "etcd not accessible: managed control plane"
MANAGED_AUTH_TYPES = frozenset({"eks"})
ETCD_POLICY_FIELDS = frozenset({"enabled", "schedule", "with_every_backup", "rpo_target_minutes"})
# The etcd block's schedule value for "a snapshot with each of the policy's backups" (no schedule of its own).
WITH_EVERY_BACKUP = "with-every-backup"


class InvalidEtcdTarget(CoreError):
    """etcd endpoints or the secret naming its client certificate are malformed."""


@dataclass(frozen=True)
class EtcdTarget:
    """How to reach a cluster's etcd: client URLs, and the Secrets Manager secret holding ``{ca, cert, key}``.

    Names where the credentials are, never a credential, so it can travel in job messages and the catalog.
    """

    endpoints: tuple[str, ...]
    secret_id: str

    def __post_init__(self) -> None:
        problems = endpoint_problems(self.endpoints)
        if not isinstance(self.secret_id, str) or not self.secret_id:
            problems.append("etcd secret_id must name a Secrets Manager secret")
        if problems:
            raise InvalidEtcdTarget("; ".join(problems))

    @classmethod
    def from_dict(cls, data: Any) -> EtcdTarget:
        if not isinstance(data, Mapping):
            raise InvalidEtcdTarget("etcd must be an object with endpoints and secret_id")
        endpoints = data.get("endpoints")
        if isinstance(endpoints, str):
            endpoints = [e.strip() for e in endpoints.split(",") if e.strip()]
        if not isinstance(endpoints, list | tuple):
            raise InvalidEtcdTarget("etcd endpoints must be a list of URLs")
        return cls(endpoints=tuple(str(e) for e in endpoints), secret_id=str(data.get("secret_id") or ""))

    def to_dict(self) -> dict[str, Any]:
        return {"endpoints": list(self.endpoints), "secret_id": self.secret_id}


def endpoint_problems(endpoints: Any) -> list[str]:
    if not endpoints:
        return ["etcd needs at least one endpoint (https://host:2379)"]
    problems = []
    for endpoint in endpoints:
        parts = urlsplit(str(endpoint))
        if parts.scheme != "https" or not parts.hostname or parts.port is None:
            problems.append(f"etcd endpoint {endpoint!r} must be https://host:port (client certificates need TLS)")
    return problems


@dataclass(frozen=True)
class EtcdPolicy:
    """A policy's ``etcd`` block: take an etcd snapshot with every backup of the policy, or on a schedule of its own.

    With ``schedule`` the dispatcher starts etcd-only backups of the policy at those times (``with_every_backup`` is
    then False and the policy's own backups take none); ``rpo_target_minutes`` is the etcd snapshots' target, by
    default the policy's.
    """

    enabled: bool = False
    with_every_backup: bool = True
    schedule: Schedule | None = None
    rpo_target_minutes: int | None = None

    def __post_init__(self) -> None:
        if self.with_every_backup == (self.schedule is not None):
            raise InvalidPolicy(["etcd: either with_every_backup or a schedule of its own, not both nor neither"])

    @property
    def separate(self) -> bool:
        """Whether etcd snapshots run on their own schedule (etcd-only backups), not with the policy's backups."""
        return self.enabled and self.schedule is not None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "enabled": self.enabled,
            "schedule": WITH_EVERY_BACKUP if self.schedule is None else self.schedule.to_dict(),
        }
        if self.rpo_target_minutes is not None:
            data["rpo_target_minutes"] = self.rpo_target_minutes
        return data


def parse_etcd_policy(data: Any, where: str, problems: list[str]) -> EtcdPolicy | None:
    """The block, or None with the problems appended (each prefixed with ``where``)."""
    if data is None:
        return EtcdPolicy()
    if isinstance(data, bool):
        data = {"enabled": data}
    if not isinstance(data, Mapping):
        problems.append(
            f"{where}: must be a mapping such as {{enabled: true, schedule: with-every-backup}} or "
            "{enabled: true, schedule: {cron: '0 * * * *', timezone: UTC}}"
        )
        return None
    before = len(problems)
    unknown = sorted(set(data) - ETCD_POLICY_FIELDS)
    if unknown:
        problems.append(
            f"{where}: unknown fields {', '.join(unknown)} (known: {', '.join(sorted(ETCD_POLICY_FIELDS))})"
        )
    for name in ("enabled", "with_every_backup"):
        if name in data and not isinstance(data[name], bool):
            problems.append(f"{where}.{name}: must be true or false; got {data[name]!r}")
    rpo = data.get("rpo_target_minutes")
    if rpo is not None and (isinstance(rpo, bool) or not isinstance(rpo, int) or rpo <= 0):
        problems.append(f"{where}.rpo_target_minutes: must be a positive integer (minutes) or left out; got {rpo!r}")
    raw = data.get("schedule", WITH_EVERY_BACKUP)
    schedule = None if raw == WITH_EVERY_BACKUP else parse_schedule(raw, f"{where}.schedule", problems)
    every = data.get("with_every_backup")
    if every is True and schedule is not None:
        problems.append(f"{where}.with_every_backup: true contradicts schedule; give one of them")
    if every is False and raw == WITH_EVERY_BACKUP:
        problems.append(
            f"{where}.with_every_backup: false needs a separate etcd schedule, e.g. schedule: {{cron: '0 * * * *'}}"
        )
    if len(problems) > before:
        return None
    return EtcdPolicy(
        enabled=bool(data.get("enabled", False)),
        with_every_backup=schedule is None,
        schedule=schedule,
        rpo_target_minutes=rpo,
    )


def policy_etcd_target(
    block: EtcdPolicy, registered: Mapping[str, Any] | None, *, managed: bool = False
) -> tuple[EtcdTarget | None, str]:
    """(target, "") when a policy's backups take an etcd snapshot, else (None, why not; "" when not asked for).

    ``registered`` is the cluster record's ``etcd``: a target, ``{"unavailable": reason}`` or None; ``managed``
    says the provider runs the control plane (EKS), also for clusters registered before etcd was recorded.
    """
    if not block.enabled:
        return None, ""
    if managed:
        return None, MANAGED_CONTROL_PLANE
    if not registered:
        return None, "the cluster has no etcd registered (lifeboat clusters add ... --etcd-endpoints --etcd-secret-id)"
    if registered.get("unavailable"):
        return None, str(registered["unavailable"])
    try:
        return EtcdTarget.from_dict(registered), ""
    except InvalidEtcdTarget as exc:
        return None, f"the cluster's etcd registration is invalid: {exc}"
