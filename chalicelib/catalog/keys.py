"""Key patterns of the catalog's item types (docs/catalog.md lists the reserved ones)."""

from __future__ import annotations

# '#' separates key parts, so it may not appear inside a part: "CLUSTER#a#STATE#x" must parse one way only.
SEP = "#"
CLUSTERS_PK = "CLUSTERS"


def check_part(kind: str, value: str) -> str:
    if not value or SEP in value:
        raise ValueError(f"{kind} must be non-empty and must not contain {SEP!r}: {value!r}")
    return value


def cluster_pk(cluster: str) -> str:
    return f"CLUSTER#{cluster}"


def backup_sk(backup_id: str) -> str:
    return f"BACKUP#{backup_id}"


def backup_key(cluster: str, backup_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": cluster_pk(cluster)}, "sk": {"S": backup_sk(backup_id)}}


def backup_state_gsi1pk(cluster: str, state: str) -> str:
    return f"CLUSTER#{cluster}#STATE#{state}"


def backup_id_key(backup_id: str) -> dict[str, dict[str, str]]:
    """The pointer item that maps a bare backup id to its cluster (and keeps ids unique across clusters)."""
    return {"pk": {"S": f"BACKUPID#{backup_id}"}, "sk": {"S": "BACKUPID"}}


def job_key(job_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "JOB"}}


def cluster_registry_key(cluster: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": CLUSTERS_PK}, "sk": {"S": f"CLUSTER#{cluster}"}}


def shard_plan_key(cluster: str, backup_id: str) -> dict[str, dict[str, str]]:
    """The plan of a sharded backup (``SHARDPLAN#``, so it never shows in the ``BACKUP#`` listing of a cluster)."""
    return {"pk": {"S": cluster_pk(cluster)}, "sk": {"S": f"SHARDPLAN#{check_part('backup id', backup_id)}"}}


def shard_sk_prefix(backup_id: str) -> str:
    return f"SHARD#{check_part('backup id', backup_id)}#"


def shard_key(cluster: str, backup_id: str, segment: str) -> dict[str, dict[str, str]]:
    """One shard: ``segment`` is its namespace, or ``_cluster`` for the cluster-scoped objects."""
    return {"pk": {"S": cluster_pk(cluster)}, "sk": {"S": shard_sk_prefix(backup_id) + check_part("shard", segment)}}


API_CLIENTS_PK = "API_CLIENTS"


def api_client_key(client_id: str) -> dict[str, dict[str, str]]:
    """An API client (its grant and where its secret is) under one partition, so listing them is one query."""
    return {"pk": {"S": API_CLIENTS_PK}, "sk": {"S": f"CLIENT#{check_part('api client id', client_id)}"}}


def signature_key(digest: str) -> dict[str, dict[str, str]]:
    """A used request signature (``digest`` is a SHA-256 hex), kept until its timestamp leaves the window."""
    return {"pk": {"S": f"SIGNATURE#{check_part('signature digest', digest)}"}, "sk": {"S": "SIGNATURE"}}
