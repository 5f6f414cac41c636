"""Backup job messages: what the dispatcher (or a user) asks a backup worker to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.dumps import DumpSpec, parse_dumps
from chalicelib.core.errors import CoreError, InvalidPolicy
from chalicelib.core.etcd import EtcdTarget
from chalicelib.core.hooks import HookSettings
from chalicelib.core.scope import BackupScope
from chalicelib.core.volume_snapshots import VolumeSettings

JOB_RESOURCES = "resources"
JOB_ETCD = "etcd"
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
    # The cluster's etcd, when this backup takes an etcd snapshot too (its policy's etcd block is enabled).
    etcd: EtcdTarget | None = None

    @classmethod
    def from_dict(cls, data: Any) -> ClusterRef:
        if not isinstance(data, dict):
            raise InvalidJob("cluster must be an object with name and auth")
        name, auth = data.get("name"), data.get("auth")
        if not isinstance(name, str) or not name or "/" in name:
            raise InvalidJob(f"cluster.name must be a non-empty string without '/', not {name!r}")
        if not isinstance(auth, dict) or auth.get("type") not in AUTH_TYPES:
            raise InvalidJob(f"cluster {name!r}: auth.type must be one of {', '.join(sorted(AUTH_TYPES))}")
        etcd = None
        if data.get("etcd") is not None:
            try:
                etcd = EtcdTarget.from_dict(data["etcd"])
            except CoreError as exc:
                raise InvalidJob(f"cluster {name!r}: {exc}") from exc
        return cls(name=name, auth=dict(auth), etcd=etcd)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "auth": dict(self.auth)}
        if self.etcd is not None:
            data["etcd"] = self.etcd.to_dict()
        return data


@dataclass(frozen=True)
class BackupJob:
    job_id: str
    cluster: ClusterRef
    scope: BackupScope = field(default_factory=BackupScope)
    policy: str | None = None
    # True: shard the backup over many invocations; False: one invocation; None: decide by the cluster's size.
    shard: bool | None = None
    # 0 for the job as scheduled; n for the message that retries it after n attempts failed for a transient reason.
    attempt: int = 0
    volumes: VolumeSettings = field(default_factory=VolumeSettings)  # the policy's volume snapshots
    # An etcd-only backup (the policy's etcd block has a schedule of its own): the snapshot and no resources.
    etcd_only: bool = False
    hooks: HookSettings = field(default_factory=HookSettings)  # the policy's pre and post hooks
    dumps: tuple[DumpSpec, ...] = ()  # the policy's database dumps, taken with this backup (core/dumps.py)

    @property
    def waits(self) -> bool:
        """Whether the backup waits on the cluster before its commit (volume snapshots, dump Jobs)."""
        return self.volumes.enabled or bool(self.dumps)

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
        shard = data.get("shard")
        if shard is not None and not isinstance(shard, bool):
            raise InvalidJob(f"job {job_id}: shard must be true, false or absent")
        attempt = data.get("attempt", 0)
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
            raise InvalidJob(f"job {job_id}: attempt must be a non-negative integer")
        try:
            volumes = VolumeSettings.from_dict(data.get("volumes"))
        except InvalidPolicy as exc:
            raise InvalidJob(f"job {job_id}: invalid volumes: {exc}") from exc
        try:
            hooks = HookSettings.from_dict(data.get("hooks"))
        except InvalidPolicy as exc:
            raise InvalidJob(f"job {job_id}: invalid hooks: {exc}") from exc
        dumps, problems = parse_dumps(data.get("dumps"), f"job {job_id}: dumps")
        if dumps is None:
            raise InvalidJob("; ".join(problems))
        cluster = ClusterRef.from_dict(data.get("cluster"))
        kind = data.get("kind", JOB_RESOURCES)
        if kind not in (JOB_RESOURCES, JOB_ETCD):
            raise InvalidJob(f"job {job_id}: kind must be {JOB_RESOURCES!r} or {JOB_ETCD!r}, not {kind!r}")
        if kind == JOB_ETCD and cluster.etcd is None:
            raise InvalidJob(f"job {job_id}: an etcd-only job needs the cluster's etcd (cluster.etcd)")
        return cls(
            job_id=job_id,
            cluster=cluster,
            scope=scope,
            policy=policy,
            shard=shard,
            attempt=attempt,
            volumes=volumes,
            etcd_only=kind == JOB_ETCD,
            hooks=hooks,
            dumps=dumps,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "job_id": self.job_id,
            "cluster": self.cluster.to_dict(),
            "scope": self.scope.to_dict(),
            "policy": self.policy,
        }
        if self.shard is not None:
            data["shard"] = self.shard
        if self.attempt:
            data["attempt"] = self.attempt
        if self.volumes.enabled:
            data["volumes"] = self.volumes.to_dict()
        if self.etcd_only:
            data["kind"] = JOB_ETCD
        if self.hooks.enabled or not self.hooks.annotations:
            data["hooks"] = self.hooks.to_dict()
        if self.dumps:
            data["dumps"] = [d.to_dict() for d in self.dumps]
        return data


# -- the work items of a sharded backup (same queue as jobs, told apart by "type") -----------------------------------

SHARD = "shard"
COMMIT = "commit"
VOLUMES = "volumes"


def _backup_of(data: dict[str, Any], what: str) -> tuple[ClusterRef, str]:
    backup = data.get("backup")
    if not isinstance(backup, str) or not backup or "/" in backup:
        raise InvalidJob(f"{what} message: backup must be a backup id, not {backup!r}")
    return ClusterRef.from_dict(data.get("cluster")), backup


@dataclass(frozen=True)
class ShardMessage:
    """Back up one namespace of a sharded backup ("" = the cluster-scoped objects), or continue doing so."""

    cluster: ClusterRef
    backup_id: str
    namespace: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardMessage:
        cluster, backup = _backup_of(data, SHARD)
        namespace = data.get("namespace")
        if not isinstance(namespace, str) or "/" in namespace or "#" in namespace:
            raise InvalidJob(f'shard message of backup {backup}: namespace must be a name or "", not {namespace!r}')
        return cls(cluster=cluster, backup_id=backup, namespace=namespace)

    def to_dict(self) -> dict[str, Any]:
        return {"type": SHARD, "cluster": self.cluster.to_dict(), "backup": self.backup_id, "namespace": self.namespace}


@dataclass(frozen=True)
class CommitMessage:
    """Every shard of a backup is done: write the root tree and the manifest, record the outcome."""

    cluster: ClusterRef
    backup_id: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CommitMessage:
        cluster, backup = _backup_of(data, COMMIT)
        return cls(cluster=cluster, backup_id=backup)

    def to_dict(self) -> dict[str, Any]:
        return {"type": COMMIT, "cluster": self.cluster.to_dict(), "backup": self.backup_id}


@dataclass(frozen=True)
class VolumesMessage:
    """A backup is waiting for its volume snapshots to become ready: look again, and commit once they are."""

    cluster: ClusterRef
    backup_id: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VolumesMessage:
        cluster, backup = _backup_of(data, VOLUMES)
        return cls(cluster=cluster, backup_id=backup)

    def to_dict(self) -> dict[str, Any]:
        return {"type": VOLUMES, "cluster": self.cluster.to_dict(), "backup": self.backup_id}


BackupMessage = BackupJob | ShardMessage | CommitMessage | VolumesMessage


def parse_message(data: Any) -> BackupMessage:
    """A message of the backup-jobs queue: a job (no "type", or "job"), a shard, a commit or a volumes wait."""
    if not isinstance(data, dict):
        raise InvalidJob("a backup queue message must be a JSON object")
    kind = data.get("type", "job")
    if kind == "job":
        return BackupJob.from_dict({k: v for k, v in data.items() if k != "type"})
    if kind == SHARD:
        return ShardMessage.from_dict(data)
    if kind == COMMIT:
        return CommitMessage.from_dict(data)
    if kind == VOLUMES:
        return VolumesMessage.from_dict(data)
    raise InvalidJob(f"unknown backup message type {kind!r}")
