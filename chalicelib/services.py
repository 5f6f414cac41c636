"""Composition root: the one place that reads settings and builds clients, adapters and services (lazily, once)."""

from __future__ import annotations

import threading
from typing import Any

from chalicelib.core.jobs import ClusterRef, InvalidJob
from chalicelib.settings import Settings


class Services:
    """Builds and caches boto3 clients and the adapters/services on top of them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.settings.region
        key = (service, region)
        with self._lock:
            if key not in self._clients:
                import boto3
                from botocore.config import Config

                config = Config(retries={"mode": "adaptive", "max_attempts": 8}, max_pool_connections=32)
                self._clients[key] = boto3.client(
                    service, region_name=region, endpoint_url=self.settings.endpoint_url, config=config
                )
            return self._clients[key]

    def catalog(self) -> Any:
        if "catalog" not in self._cache:
            from chalicelib.catalog import BackupCatalog

            self._cache["catalog"] = BackupCatalog(self.client("dynamodb"), self.settings.table)
        return self._cache["catalog"]

    def store(self, *, replica: bool = False) -> Any:
        from chalicelib.repository import S3ObjectStore

        if replica:
            if not (self.settings.replica_bucket and self.settings.replica_region):
                raise RuntimeError("no replica bucket/region configured (LIFEBOAT_REPLICA_BUCKET/REGION)")
            return S3ObjectStore(
                self.client("s3", self.settings.replica_region),
                self.settings.replica_bucket,
                prefix=self.settings.repository_prefix,
            )
        return S3ObjectStore(
            self.client("s3"),
            self.settings.bucket,
            prefix=self.settings.repository_prefix,
            kms_key_id=self.settings.kms_key_id,
        )

    def repository(self, *, create: bool = False, replica: bool = False) -> Any:
        from chalicelib.repository import Repository

        return Repository.open(self.store(replica=replica), create=create)

    def connect(self, ref: ClusterRef) -> Any:
        """A Kubernetes client for ``ref``, authenticated as its auth block says."""
        from chalicelib.kube import KubeClient
        from chalicelib.kube.auth import credentials_from_secret, eks_credentials, load_kubeconfig

        auth = ref.auth
        kind = auth.get("type")
        if kind == "kubeconfig":
            creds = load_kubeconfig(auth["kubeconfig"], context=auth.get("context"))
        elif kind in ("kubeconfig_secret", "token_secret"):
            creds = credentials_from_secret(
                self.client("secretsmanager"), auth["secret_id"], context=auth.get("context")
            )
        elif kind == "eks":
            region = auth.get("region") or self.settings.region
            creds = eks_credentials(self.client("eks", region), self.client("sts", region), auth["cluster_name"])
        else:
            raise InvalidJob(f"cluster {ref.name!r}: unsupported auth type {kind!r}")
        return KubeClient(creds)

    def backup_service(self, **options: Any) -> Any:
        from chalicelib.backup import BackupService

        return BackupService(self.catalog(), lambda: self.repository(create=True), self.connect, **options)

    # -- restores over the webhook -------------------------------------------------------------------------------

    def restore_catalog(self) -> Any:
        if "restore_catalog" not in self._cache:
            from chalicelib.catalog.restores import RestoreCatalog

            self._cache["restore_catalog"] = RestoreCatalog(self.client("dynamodb"), self.settings.table)
        return self._cache["restore_catalog"]

    def restore_queue(self) -> Any:
        from chalicelib.webhook.messaging import RestoreQueue

        return RestoreQueue(self.client("sqs"), self.settings.restore_queue_url)

    def restore_events(self) -> Any:
        from chalicelib.webhook.messaging import EventPublisher

        return EventPublisher(self.client("events"))

    def webhook_service(self) -> Any:
        """Cached: the webhook secret's cache (TTL, refresh rate limit) must outlive one request."""
        if "webhook_service" not in self._cache:
            from chalicelib.webhook.service import RestoreRequestService
            from chalicelib.webhook.signature import NoSecret, SecretsManagerSecret, SignatureVerifier

            secret_id = self.settings.webhook_secret_id
            source = SecretsManagerSecret(self.client("secretsmanager"), secret_id) if secret_id else NoSecret()
            self._cache["webhook_service"] = RestoreRequestService(
                SignatureVerifier(source), self.catalog(), self.restore_catalog(), self.restore_queue()
            )
        return self._cache["webhook_service"]


_services: Services | None = None
_services_lock = threading.Lock()


def get_services() -> Services:
    global _services
    with _services_lock:
        if _services is None:
            _services = Services(Settings.from_env())
        return _services


def set_services(services: Services | None) -> None:
    """Replace the process-wide services (tests, the sandbox)."""
    global _services
    with _services_lock:
        _services = services
