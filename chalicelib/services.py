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
                kms_key_id=self.settings.replica_kms_key_id,
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

    # -- cross-region replication ---------------------------------------------------------------------------------

    def replica_buckets(self) -> Any:
        from chalicelib.replication import NotConfigured, ReplicaBuckets

        s = self.settings
        if not (s.replica_bucket and s.replica_region):
            raise NotConfigured("no replica bucket/region configured (LIFEBOAT_REPLICA_BUCKET/REGION)")
        return ReplicaBuckets(
            self.client("s3"),
            s.bucket,
            self.client("s3", s.replica_region),
            s.replica_bucket,
            prefix=s.repository_prefix,
            kms_key_id=s.replica_kms_key_id,
        )

    def replicator(self) -> Any:
        """A fresh replicator per invocation: it caches the primary index, which later backups extend."""
        from chalicelib.replication import Replicator
        from chalicelib.repository import RepositoryReader

        return Replicator(
            self.replica_buckets(),
            region=str(self.settings.replica_region),
            open_reader=lambda: RepositoryReader(self.repository()),
            catalog=self.catalog(),
        )

    def replication_reconciler(self) -> Any:
        from datetime import UTC, datetime

        from chalicelib.replication import Reconciler

        return Reconciler(self.replicator(), self.catalog(), clock=lambda: datetime.now(UTC))

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

    def backup_service(self, *, queue: Any = None, sharding_options: Any = None, **options: Any) -> Any:
        """``queue`` (anything with ``send``/``send_many``) replaces the backup-jobs queue, e.g. in tests."""
        from chalicelib.backup import BackupService
        from chalicelib.maintenance.leased_backup import LeasedBackupService

        if queue is not None or sharding_options is not None or options:
            sharding = self.sharding(queue=queue, options=sharding_options, **options)
        else:
            sharding = self._cached("sharding", self.sharding)
        volumes = self.volume_stage(queue=queue, clock=options.get("clock"))
        service = BackupService(
            self.catalog(),
            lambda: self.repository(create=True),
            self.connect,
            sharding=sharding,
            volumes=volumes,
            **options,
        )
        # The shared repository lease keeps garbage collection from deleting blobs a running backup relies on.
        return LeasedBackupService(service, self.repository_lock())

    def volume_stage(self, *, queue: Any = None, clock: Any = None) -> Any:
        """Volume snapshots of backups, or None without a backup queue (their wait goes through it)."""
        if queue is None and not self.settings.backup_queue_url:
            return None
        from datetime import UTC, datetime

        from chalicelib.backup.queue import BackupWorkQueue
        from chalicelib.backup.volumes import VolumeStage

        return VolumeStage(
            self.catalog(),
            queue if queue is not None else BackupWorkQueue(self.client("sqs"), self.settings.backup_queue_url),
            lambda: self.repository(create=True),
            self.connect,
            clock=clock or (lambda: datetime.now(UTC)),
        )

    def sharding(self, *, queue: Any = None, options: Any = None, **service_options: Any) -> Any:
        """What sharded backups need, or None without a backup queue. Keep one per process: it caches each backup's
        plan, index and cluster client between that backup's shards (a warm Lambda handles many)."""
        if queue is None and not self.settings.backup_queue_url:
            return None
        from datetime import UTC, datetime

        from chalicelib.backup.queue import BackupWorkQueue
        from chalicelib.backup.sharded.context import Sharding
        from chalicelib.catalog.shards import ShardCatalog

        return Sharding(
            self.catalog(),
            ShardCatalog(self.client("dynamodb"), self.settings.table),
            queue if queue is not None else BackupWorkQueue(self.client("sqs"), self.settings.backup_queue_url),
            lambda: self.repository(create=True),
            self.connect,
            clock=service_options.get("clock", lambda: datetime.now(UTC)),
            list_workers=service_options.get("list_workers", 4),
            page_size=service_options.get("page_size", 500),
            writer_options=service_options.get("writer_options"),
            options=options,
            volumes=self.volume_stage(queue=queue, clock=service_options.get("clock")),
        )

    # -- restores: the job catalog, its queue and events ---------------------------------------------------------

    def restore_catalog(self) -> Any:
        if "restore_catalog" not in self._cache:
            from chalicelib.catalog.restores import RestoreCatalog

            self._cache["restore_catalog"] = RestoreCatalog(self.client("dynamodb"), self.settings.table)
        return self._cache["restore_catalog"]

    def restore_queue(self) -> Any:
        from chalicelib.restore.queue import RestoreQueue

        return RestoreQueue(self.client("sqs"), self.settings.restore_queue_url)

    def restore_events(self) -> Any:
        from chalicelib.restore.events import EventPublisher

        return EventPublisher(self.client("events"))

    # -- policies, scheduling, maintenance -----------------------------------------------------------------------

    def _cached(self, name: str, build: Any) -> Any:
        # Built outside the lock: building asks for clients, which take the same (non-reentrant) lock.
        if name not in self._cache:
            value = build()
            with self._lock:
                self._cache.setdefault(name, value)
        return self._cache[name]

    def policy_catalog(self) -> Any:
        from chalicelib.catalog.policies import PolicyCatalog

        return PolicyCatalog(self.client("dynamodb"), self.settings.table)

    def cluster_catalog(self) -> Any:
        from chalicelib.catalog.clusters import ClusterCatalog

        return ClusterCatalog(self.client("dynamodb"), self.settings.table)

    def repository_lock(self) -> Any:
        """Leases on the primary repository; the scope names bucket and prefix, as the repository is shared."""
        from chalicelib.catalog.leases import LeaseCatalog
        from chalicelib.maintenance.lock import RepositoryLock

        scope = f"s3://{self.settings.bucket}/{self.settings.repository_prefix}"
        return RepositoryLock(LeaseCatalog(self.client("dynamodb"), self.settings.table), scope)

    def dispatcher(self) -> Any:
        from chalicelib.backup.queue import BackupWorkQueue
        from chalicelib.scheduling.dispatcher import Dispatcher

        queue = BackupWorkQueue(self.client("sqs"), self.settings.backup_queue_url)
        return Dispatcher(
            self.policy_catalog(), self.catalog(), self.cluster_catalog(), queue, lock=self.repository_lock()
        )

    def policy_service(self) -> Any:
        from chalicelib.scheduling.policies import PolicyService

        return PolicyService(self.policy_catalog(), self.cluster_catalog())

    def cluster_service(self) -> Any:
        from chalicelib.scheduling.clusters import ClusterService

        return ClusterService(self.cluster_catalog(), self.connect)

    def status_service(self) -> Any:
        from chalicelib.scheduling.status import StatusService

        return StatusService(self.policy_catalog(), self.catalog())

    def retention_service(self) -> Any:
        from chalicelib.maintenance.retention import RetentionService

        return RetentionService(self.policy_catalog(), self.catalog())

    def maintenance_service(self, **options: Any) -> Any:
        from chalicelib.core.jobs import ClusterRef
        from chalicelib.maintenance.service import MaintenanceService
        from chalicelib.maintenance.snapshots import SnapshotCollector

        def clusters() -> list[ClusterRef]:
            return [ClusterRef(c.name, c.auth) for c in self.cluster_catalog().list() if c.auth is not None]

        options.setdefault("snapshots", SnapshotCollector(clusters, self.connect, self.catalog()))
        return MaintenanceService(
            self.repository_lock(), self.retention_service(), lambda: self.repository(), **options
        )

    # -- the signed HTTP API -------------------------------------------------------------------------------------

    def signature_verifier(self) -> Any:
        """Cached, and shared by every route: the secret's cache (TTL, refresh rate limit) must outlive one request."""

        def build() -> Any:
            from chalicelib.api.signature import NoSecret, SecretsManagerSecret, SignatureVerifier

            secret_id = self.settings.webhook_secret_id
            source = SecretsManagerSecret(self.client("secretsmanager"), secret_id) if secret_id else NoSecret()
            return SignatureVerifier(source)

        return self._cached("signature_verifier", build)

    def restore_api(self) -> Any:
        """Cached, like the verifier it holds."""

        def build() -> Any:
            from chalicelib.api.restores import RestoreApi

            return RestoreApi(self.signature_verifier(), self.catalog(), self.restore_catalog(), self.restore_queue())

        return self._cached("restore_api", build)

    def backup_api(self) -> Any:
        from chalicelib.api.backups import BackupApi

        return BackupApi(self.signature_verifier(), self.catalog())

    def policy_api(self) -> Any:
        from chalicelib.api.policies import PolicyApi

        return PolicyApi(self.signature_verifier(), self.policy_service())


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
