"""The cost model: requests and bytes per run, from a cluster's shape and a policy, priced per month.

Per-run counts follow the backup path in docs/architecture.md: objects are packed into ~4 MiB zstd packs (a
no-op incremental writes no pack), one index file, one tree per changed namespace plus the cluster and root trees,
one manifest; replication copies each new object once. Durations use throughputs assumed for a 1 GiB function
(``Throughput``); they are parameters, to be replaced by measured figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from chalicelib.core.etcd import MANAGED_AUTH_TYPES

MIB = 1 << 20
GIB = 1 << 30
HOURS_PER_MONTH = 730.0
PACK_TARGET = 4 * MIB
TREE_ENTRY_PACKED = 60  # bytes per object in a packed namespace tree (measured: 24,020 bytes for 404 entries)
RESULTS_PER_CHECKPOINT = 200  # restore/checkpointer.py FLUSH_EVERY: one transaction per 200 objects' results
HEARTBEAT_S = 30.0  # restore/worker.py HEARTBEAT_EVERY_S
ALARMS = 14  # AWS::CloudWatch::Alarm resources in infra/lifeboat.yaml
DEPLOYMENT_METRICS = 29  # add_metric calls with only the service dimension (30 less the per-policy RPO one)
POLICY_METRICS = 1  # PolicyRpoMinutes, dimensions cluster and policy (scheduling/status.py)


@dataclass(frozen=True)
class ClusterShape:
    objects: int
    avg_object_bytes: int = 4096
    change_rate: float = 0.01  # fraction of objects changed per run
    namespaces: int = 20
    pvcs: int = 0
    pvc_gib: float = 0.0  # average size of one PVC
    pvc_change_rate: float = 0.02  # fraction of a PVC's blocks changed per snapshot
    etcd_mib: float = 0.0  # an etcd snapshot per run when > 0
    dump_mib: float = 0.0  # database dumps per run
    compression: float = 0.15  # packed bytes / raw canonical JSON bytes (zstd on Kubernetes JSON)
    # How the cluster is registered (scheduling/clusters.py): "eks" authenticates with IAM and stores nothing;
    # "kubeconfig_secret" and "token_secret" keep a Secrets Manager secret, read on every connecting invocation.
    auth: str = "eks"

    @property
    def stored_secrets(self) -> int:
        """Secrets Manager secrets the cluster's registration names: its credentials, its etcd client certificate."""
        if self.auth in MANAGED_AUTH_TYPES:
            return 0  # and EKS runs etcd: no etcd target, no etcd secret
        return 1 + (1 if self.etcd_mib else 0)


@dataclass(frozen=True)
class PolicyShape:
    runs_per_day: float = 24.0
    retention_runs: int = 48  # backups kept
    replica: bool = False
    replications_per_day: float = 1.0
    verifications_per_month: float = 4.0
    ebs_snapshots: bool = True
    storage_class: str = "standard"  # standard | standard_ia | glacier_ir (for packs older than a month)


@dataclass(frozen=True)
class Throughput:
    """Objects per second of a 1 GiB function (assumed, see the module doc) and fixed seconds per invocation."""

    full_objects_s: float = 2500.0
    incremental_objects_s: float = 12000.0  # listing and hashing what the index already holds
    restore_objects_s: float = 800.0  # creates through the API server
    startup_s: float = 1.5


@dataclass(frozen=True)
class Requests:
    s3_put: int = 0
    s3_get: int = 0
    s3_list: int = 0
    s3_copy: int = 0
    ddb_write: int = 0
    ddb_read: int = 0
    sqs: int = 0
    events: int = 0
    bytes_written: int = 0

    def __add__(self, other: Requests) -> Requests:
        return Requests(**{k: v + getattr(other, k) for k, v in asdict(self).items()})

    def scaled(self, n: float) -> dict[str, float]:
        return {k: v * n for k, v in asdict(self).items()}


def packed_bytes(shape: ClusterShape, fraction: float) -> int:
    return int(shape.objects * fraction * shape.avg_object_bytes * shape.compression)


def tree_bytes(shape: ClusterShape, namespaces: int) -> int:
    """Packed bytes of ``namespaces`` namespace trees (a changed namespace's tree is written whole again)."""
    return math.ceil(shape.objects * min(1.0, namespaces / max(1, shape.namespaces))) * TREE_ENTRY_PACKED


def backup_requests(shape: ClusterShape, fraction: float, *, new_repository: bool = False) -> Requests:
    """One backup in which ``fraction`` of the objects changed (1.0: a full backup with no parent).

    Measured on moto (tests/integration/test_cost_requests.py): trees are blobs inside the packs, so the PUTs are
    the packs, one index file and the manifest (and the repository's config the first time); an incremental reads
    its parent's manifest, index, and root with its trees (one range GET, ``RepositoryReader.root(with_trees=True)``),
    and a sample of the blobs it reuses (5 GETs for one namespace; one more per further changed namespace tree).
    These are a cold worker's: a warm one reads only the index files written since its last backup of the repository.
    """
    changed = math.ceil(shape.objects * fraction)
    trees = (min(shape.namespaces, changed) + 2) if changed else 0  # changed namespaces, cluster tree, root tree
    data = packed_bytes(shape, fraction) + (tree_bytes(shape, trees - 2) + 2 * 256 if changed else 0)
    packs = math.ceil(data / PACK_TARGET) if changed else 0
    parent = fraction < 1.0
    puts = packs + (1 if changed else 0) + 1 + (1 if new_repository else 0)  # packs, index, manifest, config
    puts += (1 if shape.etcd_mib else 0) + (1 if shape.dump_mib else 0)
    gets = (4 + shape.namespaces) if parent else 1  # config, parent's manifest, index, root and trees, sample
    return Requests(
        s3_put=puts,
        s3_get=gets,
        s3_list=1,  # the index files
        ddb_write=4,  # claim as Running (transaction), commit (transaction), lease, lease release
        ddb_read=3,  # parent lookup, latest, record
        sqs=3,  # send, receive, delete (the worker path; the one-shot CLI has none)
        events=2,  # Backup Started, Backup Completed
        bytes_written=data + int((shape.etcd_mib + shape.dump_mib) * MIB),
    )


def replication_requests(backup: Requests, *, incremental: bool = True) -> Requests:
    """Copying one backup's new objects to the replica bucket: one COPY each, one SQS delete each.

    The HEAD/GET count (the replicator's checks of each copy and of the backup's closure before it marks the backup
    replicated) is a fit to two runs measured on moto (tests/integration/test_cost_requests.py): 10 objects copied
    made 33 reads, 3 made 24.
    """
    n = backup.s3_put
    return Requests(
        s3_copy=n,
        s3_get=math.ceil(10 * n / 7) + 19 + (1 if incremental else 0),
        s3_list=2,
        ddb_write=2,
        ddb_read=0,
        sqs=n + 2,
        events=1,
    )


def restore_requests(shape: ClusterShape, *, index_files: int = 1, seconds: float = 0.0) -> Requests:
    """Restoring every object of a full backup: a restore job from its creation to its announcement.

    Measured on moto (tests/integration/test_cost_requests.py): the reader GETs the config, the manifest and each
    index file (one LIST), the root tree, the scope trees in one batch (one GET per pack holding trees: they are
    contiguous) and each pack's objects in one GET (the reader fetches a pack whole when most of it is wanted).
    The job is one transaction to create it, a claim, one transaction per 200 objects' results, a heartbeat every
    30 s (``seconds``), the finish and the event's mark; a read of the record and one of its done markers; one
    event. ``index_files``: a repository holds one consolidated index plus one per backup since the last GC.
    """
    data_gets = max(1, math.ceil(packed_bytes(shape, 1.0) / PACK_TARGET))
    tree_gets = max(1, math.ceil(tree_bytes(shape, shape.namespaces) / PACK_TARGET))
    checkpoints = math.ceil(shape.objects / RESULTS_PER_CHECKPOINT)
    heartbeats = int(seconds // HEARTBEAT_S)
    return Requests(
        s3_get=2 + index_files + 1 + tree_gets + data_gets,  # config, manifest, index files, root tree, trees, packs
        s3_list=1,
        ddb_write=1 + 1 + checkpoints + heartbeats + 2,
        ddb_read=2,
        sqs=3,  # the API's send, the worker's receive and delete
        events=1,  # Restore Completed (or Failed)
    )


@dataclass(frozen=True)
class Line:
    service: str
    item: str
    quantity: float
    unit: str
    usd: float


@dataclass(frozen=True)
class Estimate:
    lines: tuple[Line, ...]
    prices: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(line.usd for line in self.lines)

    def by_service(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.lines:
            out[line.service] = out.get(line.service, 0.0) + line.usd
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def to_json(self) -> dict[str, Any]:
        return {
            "total_usd": round(self.total, 4),
            "by_service": {k: round(v, 4) for k, v in self.by_service().items()},
            "lines": [asdict(line) for line in self.lines],
            "prices": {k: self.prices[k] for k in ("version", "region", "taken", "source") if k in self.prices},
        }


MEMORY_GB = {"backup": 1.0, "replicator": 0.5, "dispatcher": 1769 / 1024, "verification": 1.0, "rpo_monitor": 0.25}


def estimate(
    shape: ClusterShape, policy: PolicyShape, prices: Mapping[str, Any], speed: Throughput | None = None
) -> Estimate:
    """The monthly cost of protecting one cluster with one policy (per-cluster items only, see ``fixed``)."""
    speed = speed or Throughput()
    p = prices
    runs = policy.runs_per_day * 30.4
    incr = backup_requests(shape, shape.change_rate)
    full = backup_requests(shape, 1.0)
    reps = policy.replications_per_day * 30.4 if policy.replica else 0.0
    # a replication copies what the runs since the last one wrote
    runs_per_rep = runs / reps if reps else 0.0
    rep = replication_requests(incr)
    month = incr.scaled(runs - 1)
    for k, v in full.scaled(1).items():  # one full a month (a new chain after maintenance)
        month[k] += v
    rep_month = rep.scaled(reps * runs_per_rep)
    restore_s = speed.startup_s + shape.objects / speed.restore_objects_s
    # A verification restores the newest backup, reading the index GC consolidated plus, on average, half a day's
    # backups' index files (GC runs daily).
    index_files = 1 + math.ceil(policy.runs_per_day / 2)
    ver = restore_requests(shape, index_files=index_files, seconds=restore_s).scaled(policy.verifications_per_month)
    lines: list[Line] = []

    def add(service: str, item: str, qty: float, unit: str, price_key: str) -> None:
        lines.append(Line(service, item, round(qty, 3), unit, qty * float(p[price_key])))

    backup_s = (
        speed.startup_s
        + shape.objects / speed.incremental_objects_s
        + (shape.objects * shape.change_rate / speed.full_objects_s)
    )
    add("Lambda", "backup GB-seconds", runs * backup_s * MEMORY_GB["backup"], "GB-s", "lambda_gb_second")
    rep_s = reps * runs_per_rep * (speed.startup_s + rep.s3_copy * 0.05)
    add("Lambda", "replicator GB-seconds", rep_s * MEMORY_GB["replicator"], "GB-s", "lambda_gb_second")
    ver_s = policy.verifications_per_month * restore_s
    add("Lambda", "verification GB-seconds", ver_s * MEMORY_GB["verification"], "GB-s", "lambda_gb_second")
    add("Lambda", "requests", runs + reps * runs_per_rep + policy.verifications_per_month, "requests", "lambda_request")

    full_gb = packed_bytes(shape, 1.0) / GIB
    kept_changes_gb = policy.retention_runs * incr.bytes_written / GIB
    stored_gb = full_gb + kept_changes_gb
    store_key = {
        "standard": "s3_standard_gb_month",
        "standard_ia": "s3_standard_ia_gb_month",
        "glacier_ir": "s3_glacier_ir_gb_month",
    }[policy.storage_class]
    add("S3", "storage, primary region", stored_gb, "GB-month", store_key)
    if policy.replica:
        add("S3", "storage, replica region", stored_gb, "GB-month", store_key)
    add("S3", "PUT requests", month["s3_put"], "requests", "s3_put_copy_list")
    add("S3", "GET/HEAD requests", month["s3_get"] + rep_month["s3_get"] + ver["s3_get"], "requests", "s3_get")
    add("S3", "LIST requests", month["s3_list"] + rep_month["s3_list"] + ver["s3_list"], "requests", "s3_put_copy_list")
    add("S3", "COPY requests (replication)", rep_month["s3_copy"], "requests", "s3_put_copy_list")
    if policy.replica:
        gb = (month["bytes_written"] + full.bytes_written) / GIB
        add("Transfer", "inter-region, repository copies", gb, "GB", "transfer_inter_region_gb")

    ddb_w = month["ddb_write"] + rep_month["ddb_write"] + ver["ddb_write"]
    ddb_r = month["ddb_read"] + rep_month["ddb_read"] + ver["ddb_read"]
    add("DynamoDB", "write request units", ddb_w, "WRU", "dynamodb_write_request_unit")
    add("DynamoDB", "read request units", ddb_r, "RRU", "dynamodb_read_request_unit")
    catalog_gb = policy.retention_runs * 2048 / GIB  # one ~2 KiB item per kept backup
    add("DynamoDB", "storage", catalog_gb, "GB-month", "dynamodb_gb_month")
    add("SQS", "requests", month["sqs"] + rep_month["sqs"] + ver["sqs"], "requests", "sqs_request")
    events = month["events"] + rep_month["events"] + ver["events"]
    add("EventBridge", "events", events, "events", "eventbridge_event")
    add(
        "KMS",
        "requests (S3 bucket keys)",
        runs + reps * runs_per_rep + 2 * policy.verifications_per_month,
        "requests",
        "kms_request",
    )
    if shape.stored_secrets:
        secrets = shape.stored_secrets
        add("Secrets Manager", "cluster secrets", secrets, "secret-month", "secretsmanager_secret_month")
        reads = secrets * (runs + policy.verifications_per_month)
        add("Secrets Manager", "GetSecretValue", reads, "requests", "secretsmanager_request")
    if policy.ebs_snapshots and shape.pvcs:
        snap_gb = shape.pvcs * shape.pvc_gib * (1 + min(policy.retention_runs, runs) * shape.pvc_change_rate)
        add("EBS", "snapshot storage", snap_gb, "GB-month", "ebs_snapshot_gb_month")
        if policy.replica:
            add("EBS", "snapshot copies, replica storage", snap_gb, "GB-month", "ebs_snapshot_gb_month")
            copy_gb = shape.pvcs * shape.pvc_gib * shape.pvc_change_rate * reps
            add("Transfer", "inter-region, snapshot copies", copy_gb, "GB", "transfer_inter_region_gb")
    # status.py publishes PolicyRpoMinutes per (cluster, policy), its target and flag only as log properties;
    # the backup metrics and the alarms carry only the service dimension: fixed costs of the deployment.
    add("CloudWatch", "RPO metric per policy", POLICY_METRICS, "metric-month", "cloudwatch_metric_month")
    add(
        "CloudWatch",
        "log ingestion",
        (runs * 20 + reps * runs_per_rep * 5) * 1024 / GIB,
        "GB",
        "cloudwatch_logs_ingest_gb",
    )
    return Estimate(tuple(lines), dict(p))


def fixed(prices: Mapping[str, Any], dispatcher_s: float = 0.3) -> Estimate:
    """What one deployment costs however many clusters it protects: the dispatcher's minute tick, the KMS key,
    idle SQS long polls of the event source mappings, the monitor's tick."""
    p = prices
    ticks = 60 * HOURS_PER_MONTH
    lines = [
        Line(
            "Lambda",
            "dispatcher GB-seconds",
            ticks * dispatcher_s * MEMORY_GB["dispatcher"],
            "GB-s",
            ticks * dispatcher_s * MEMORY_GB["dispatcher"] * float(p["lambda_gb_second"]),
        ),
        Line(
            "Lambda", "dispatcher and monitor requests", 2 * ticks, "requests", 2 * ticks * float(p["lambda_request"])
        ),
        Line(
            "EventBridge",
            "scheduler ticks",
            2 * ticks,
            "invocations",
            2 * ticks * float(p["eventbridge_scheduler_invocation"]),
        ),
        Line("KMS", "customer managed key", 1, "key-month", float(p["kms_key_month"])),
        Line(
            "CloudWatch",
            "alarms in infra/lifeboat.yaml",
            ALARMS,
            "alarm-month",
            ALARMS * float(p["cloudwatch_alarm_month"]),
        ),
        Line(
            "CloudWatch",
            "deployment metrics (service dimension)",
            DEPLOYMENT_METRICS,
            "metric-month",
            DEPLOYMENT_METRICS * float(p["cloudwatch_metric_month"]),
        ),
        # Lambda polls each queue with long polls: about 5 pollers x 3 polls a minute when idle, 3 queues
        Line("SQS", "idle long polls", 3 * 5 * 3 * ticks, "requests", 3 * 5 * 3 * ticks * float(p["sqs_request"])),
    ]
    return Estimate(tuple(lines), dict(p))


def shape_from_backups(records: list[Any]) -> ClusterShape:
    """A cluster's shape from its catalog records (newest first): objects from the newest, change from the rest."""
    if not records:
        raise ValueError("no completed backups to read the cluster's shape from")
    newest = records[0]
    objects = int(newest.counts.get("objects", 0)) or 1
    raw = int(newest.stats.get("bytes_raw", 0))
    avg = raw // objects if raw and int(newest.counts.get("blobs_new", 0)) >= objects else 4096
    changed = [int(r.counts.get("blobs_new", 0)) / max(1, int(r.counts.get("objects", 1))) for r in records if r.parent]
    rate = sum(changed) / len(changed) if changed else 0.01
    return ClusterShape(
        objects=objects,
        avg_object_bytes=avg,
        change_rate=min(1.0, rate),
        namespaces=int(newest.counts.get("namespaces", 20)) or 20,
    )
