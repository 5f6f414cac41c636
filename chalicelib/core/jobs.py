"""Backup job messages: what the dispatcher (or a user) asks a backup worker to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.errors import CoreError
from chalicelib.core.scope import BackupScope

AUTH_TYPES = frozenset({"kubeconfig", "kubeconfig_secret", "token_secret", "eks"})


class InvalidJob(CoreError):
    """A backup job message is malformed; retrying it cannot help."""


@dataclass(frozen=True)
class ClusterRef:
    """How to reach a cluster: its name in the repository plus an authentication method.

    auth examples: {"type": "eks", "cluster_name": "prod", "region": "eu-west-1"},
    {"type": "kubeconfig_secret", "secret_id": "lifeboat/prod", "context": "prod"},
    {"type": "token_secret", "secret_id": "lifeboat/prod-sa"}, {"type": "kubeconfig", "kubeconfig": "<yaml>"}.
    """

    name: str
    auth: dict[str, Any]

    @classmethod
    def from_dict(cls, data: Any) -> ClusterRef:
        if not isinstance(data, dict):
            raise InvalidJob("cluster must be an object with name and auth")
        name, auth = data.get("name"), data.get("auth")
        if not isinstance(name, str) or not name or "/" in name:
            raise InvalidJob(f"cluster.name must be a non-empty string without '/', not {name!r}")
        if not isinstance(auth, dict) or auth.get("type") not in AUTH_TYPES:
            raise InvalidJob(f"cluster {name!r}: auth.type must be one of {', '.join(sorted(AUTH_TYPES))}")
        return cls(name=name, auth=dict(auth))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "auth": dict(self.auth)}


@dataclass(frozen=True)
class BackupJob:
    job_id: str
    cluster: ClusterRef
    scope: BackupScope = field(default_factory=BackupScope)
    policy: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> BackupJob:
        if not isinstance(data, dict):
            raise InvalidJob("a backup job must be a JSON object")
        job_id = data.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise InvalidJob("job_id is required")
        try:
            scope = BackupScope.from_dict(data.get("scope"))
        except CoreError as exc:
            raise InvalidJob(f"job {job_id}: invalid scope: {exc}") from exc
        policy = data.get("policy")
        if policy is not None and not isinstance(policy, str):
            raise InvalidJob(f"job {job_id}: policy must be a string")
        return cls(job_id=job_id, cluster=ClusterRef.from_dict(data.get("cluster")), scope=scope, policy=policy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "cluster": self.cluster.to_dict(),
            "scope": self.scope.to_dict(),
            "policy": self.policy,
        }
