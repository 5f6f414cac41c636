"""Managing policies (CLI and ``/v1/policies``): apply a policy file, list, describe, delete."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.catalog.errors import AlreadyExists, RecordNotFound, VersionConflict
from chalicelib.catalog.policies import PolicyRecord
from chalicelib.catalog.policy_runs import RunRecord
from chalicelib.core.errors import InvalidPolicy
from chalicelib.core.etcd import MANAGED_AUTH_TYPES, policy_etcd_target
from chalicelib.core.policies import Policy, parse_policy_document
from chalicelib.core.schedule import next_run
from chalicelib.scheduling.errors import PolicyConflict, PolicyNotFound
from chalicelib.scheduling.etcd_dispatch import sync_etcd_schedule
from chalicelib.scheduling.verify_dispatch import sync_verify_schedule

_ATTEMPTS = 5


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Applied:
    name: str
    cluster: str
    change: str  # created | updated | unchanged
    next_run_at: str | None


def load_policy_text(text: str | bytes) -> Any:
    """A policy file's document (YAML, which includes JSON); InvalidPolicy naming the line when it does not parse."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidPolicy([f"policy file is not valid YAML{where}: {problem}"]) from exc


class PolicyService:
    def __init__(
        self,
        policies: Any,
        clusters: Any,
        *,
        clock: Callable[[], datetime] = _utcnow,
        etcd_schedules: Any = None,
        verify_schedules: Any = None,
    ) -> None:
        """``etcd_schedules`` and ``verify_schedules`` (``catalog.side_schedules.SideScheduleCatalog`` of the kinds
        etcd and verify) keep a policy's separate etcd schedule and its verification schedule."""
        self._policies = policies
        self._clusters = clusters
        self._clock = clock
        self._etcd_schedules = etcd_schedules
        self._verify_schedules = verify_schedules

    def _registered(self, cluster: str) -> bool:
        try:
            self._clusters.get(cluster)
        except RecordNotFound:
            return False
        return True

    def apply(self, policy: Policy) -> Applied:
        applied = self._apply(policy)
        if self._etcd_schedules is not None:
            sync_etcd_schedule(self._etcd_schedules, policy, self._clock())
        if self._verify_schedules is not None:
            sync_verify_schedule(self._verify_schedules, policy, self._clock())
        return applied

    def apply_text(self, text: str | bytes) -> list[Applied]:
        return self.apply_document(load_policy_text(text))

    def apply_document(self, doc: Any) -> list[Applied]:
        """Create or update every policy of a file (policies not in the file are left alone); all or nothing on
        validation: nothing is written unless every policy is valid and names a registered cluster."""
        policies = parse_policy_document(doc)
        problems = []
        for position, policy in enumerate(policies):
            try:
                cluster = self._clusters.get(policy.cluster)
            except RecordNotFound:
                problems.append(
                    f"policies[{position}] ({policy.name}).cluster: {policy.cluster!r} is not registered; "
                    f"run `lifeboat clusters add {policy.cluster} ...` first"
                )
                continue
            managed = (cluster.auth or {}).get("type") in MANAGED_AUTH_TYPES
            _, refused = policy_etcd_target(policy.etcd, cluster.etcd, managed=managed)
            if refused:
                problems.append(f"policies[{position}] ({policy.name}).etcd: {refused}")
            target = policy.verify.target_cluster if policy.verify is not None else None
            if target and target != policy.cluster and not self._registered(target):
                problems.append(
                    f"policies[{position}] ({policy.name}).verify.target_cluster: {target!r} is not registered; "
                    f"run `lifeboat clusters add {target} ...` first"
                )
        if problems:
            raise InvalidPolicy(problems)
        return [self.apply(policy) for policy in policies]

    def _apply(self, policy: Policy) -> Applied:
        for _attempt in range(_ATTEMPTS):
            now = self._clock()
            existing = self._policies.find(policy.cluster, policy.name)
            if existing is None:
                owner = self._policies.owner(policy.name)
                if owner is not None and owner != policy.cluster:
                    raise PolicyConflict(
                        f"policy name {policy.name!r} already belongs to cluster {owner!r}; names are unique across "
                        "clusters (delete it there first to move it)"
                    )
                first = next_run(policy.schedule, now) if policy.enabled else None
                try:
                    record = self._policies.create(policy, next_run_at=first, now=now)
                except AlreadyExists:
                    continue  # created concurrently: read it again
                return Applied(policy.name, policy.cluster, "created", record.next_run_at)
            if existing.policy == policy:
                return Applied(policy.name, policy.cluster, "unchanged", existing.next_run_at)
            reschedule = (
                existing.policy.schedule != policy.schedule or not existing.policy.enabled or not existing.next_run_at
            )
            upcoming: datetime | str | None = None
            if policy.enabled:
                upcoming = next_run(policy.schedule, now) if reschedule else existing.next_run_at
            try:
                record = self._policies.update(policy, next_run_at=upcoming, expected_version=existing.version, now=now)
            except VersionConflict:
                continue  # the dispatcher claimed a run meanwhile: recompute from the fresh record
            return Applied(policy.name, policy.cluster, "updated", record.next_run_at)
        raise PolicyConflict(f"policy {policy.name!r} kept changing while being applied; try again")

    def list(self, cluster: str | None = None) -> list[PolicyRecord]:
        return list(self._policies.list(cluster))

    def get(self, name: str) -> PolicyRecord:
        try:
            record: PolicyRecord = self._policies.get(name)
            return record
        except RecordNotFound as exc:
            raise PolicyNotFound(f"policy {name!r} not found") from exc

    def runs(self, name: str, *, limit: int = 20) -> builtins.list[RunRecord]:
        record = self.get(name)
        return list(self._policies.runs(record.policy.cluster, name, limit=limit))

    def delete(self, name: str) -> PolicyRecord:
        """Stop scheduling a policy. Its backups stay (retention no longer touches them)."""
        try:
            record: PolicyRecord = self._policies.delete(name)
        except RecordNotFound as exc:
            raise PolicyNotFound(f"policy {name!r} not found") from exc
        for schedules in (self._etcd_schedules, self._verify_schedules):
            if schedules is not None:
                schedules.remove(record.policy.cluster, name)
        return record


def policy_view(record: PolicyRecord) -> dict[str, Any]:
    """A policy as the API and ``--output json`` show it: its definition plus its scheduling state."""
    return {
        **record.policy.to_dict(),
        "next_run_at": record.next_run_at,
        "last_run": record.last_run,
        "runs": record.runs,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
