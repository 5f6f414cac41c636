"""Deployment settings, read from the environment in one place (the only module reading ``os.environ``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICE = "lifeboat"
METRICS_NAMESPACE = "Lifeboat"


def environment() -> Mapping[str, str]:
    """The process environment (Lambda's configuration, or the shell's for the CLI)."""
    return os.environ


def default_kubeconfig(env: Mapping[str, str] | None = None) -> str:
    """Where kubectl looks: ``$KUBECONFIG``, else ``~/.kube/config``."""
    env = environment() if env is None else env
    return env.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


def powertools_names(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The logs' and metrics' service name and the metrics namespace (powertools' own variables override ours)."""
    env = environment() if env is None else env
    return env.get("POWERTOOLS_SERVICE_NAME", SERVICE), env.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)


@dataclass(frozen=True)
class Settings:
    table: str
    bucket: str
    region: str
    replica_bucket: str | None = None
    replica_region: str | None = None
    kms_key_id: str | None = None
    replica_kms_key_id: str | None = None  # the replica region's key: KMS keys never leave their region
    backup_queue_url: str | None = None
    restore_queue_url: str | None = None
    verification_queue_url: str | None = None
    etcd_bin_dir: str | None = None  # etcd and etcdutl for verifying etcd snapshots (a Lambda layer's /opt/bin)
    endpoint_url: str | None = None  # emulated AWS (moto server); None means the real endpoints
    # The delay of the messages a wait continues from (volume snapshots, verification readiness); None keeps each
    # one's default (30 s). The sandbox shortens it so its demo does not wait on SQS delays.
    poll_delay_s: int | None = None
    repository_prefix: str = "lifeboat/v1/"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, required: bool = True) -> Settings:
        """Settings from ``env`` (the process environment by default); ``required=False`` leaves a missing table or
        bucket empty, for callers (the CLI) that take them from their own options and check afterwards."""
        env = environment() if env is None else env
        missing = [k for k in ("LIFEBOAT_TABLE", "LIFEBOAT_BUCKET") if not env.get(k)]
        if missing and required:
            raise RuntimeError(f"missing required environment variables: {', '.join(missing)}")
        return cls(
            table=env.get("LIFEBOAT_TABLE", ""),
            bucket=env.get("LIFEBOAT_BUCKET", ""),
            region=env.get("LIFEBOAT_REGION") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            replica_bucket=env.get("LIFEBOAT_REPLICA_BUCKET") or None,
            replica_region=env.get("LIFEBOAT_REPLICA_REGION") or None,
            kms_key_id=env.get("LIFEBOAT_KMS_KEY_ID") or None,
            replica_kms_key_id=env.get("LIFEBOAT_REPLICA_KMS_KEY_ID") or None,
            backup_queue_url=env.get("LIFEBOAT_BACKUP_QUEUE_URL") or None,
            restore_queue_url=env.get("LIFEBOAT_RESTORE_QUEUE_URL") or None,
            verification_queue_url=env.get("LIFEBOAT_VERIFICATION_QUEUE_URL") or None,
            etcd_bin_dir=env.get("LIFEBOAT_ETCD_BIN_DIR") or None,
            endpoint_url=env.get("LIFEBOAT_AWS_ENDPOINT_URL") or None,
            poll_delay_s=int(env["LIFEBOAT_POLL_DELAY_S"]) if env.get("LIFEBOAT_POLL_DELAY_S") else None,
        )

    def with_overrides(self, **overrides: Any) -> Settings:
        """These settings with every override that is not None (command-line options over the environment)."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})
