"""Deployment settings, read from the environment in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


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
    endpoint_url: str | None = None  # emulated AWS (moto server); None means the real endpoints
    repository_prefix: str = "lifeboat/v1/"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [k for k in ("LIFEBOAT_TABLE", "LIFEBOAT_BUCKET") if not env.get(k)]
        if missing:
            raise RuntimeError(f"missing required environment variables: {', '.join(missing)}")
        return cls(
            table=env["LIFEBOAT_TABLE"],
            bucket=env["LIFEBOAT_BUCKET"],
            region=env.get("LIFEBOAT_REGION") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            replica_bucket=env.get("LIFEBOAT_REPLICA_BUCKET") or None,
            replica_region=env.get("LIFEBOAT_REPLICA_REGION") or None,
            kms_key_id=env.get("LIFEBOAT_KMS_KEY_ID") or None,
            replica_kms_key_id=env.get("LIFEBOAT_REPLICA_KMS_KEY_ID") or None,
            backup_queue_url=env.get("LIFEBOAT_BACKUP_QUEUE_URL") or None,
            restore_queue_url=env.get("LIFEBOAT_RESTORE_QUEUE_URL") or None,
            endpoint_url=env.get("LIFEBOAT_AWS_ENDPOINT_URL") or None,
        )
