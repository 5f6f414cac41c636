"""Results of etcd snapshot verifications (restore + read back), one item per backup: ``ETCDVERIFY#<backup id>``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.catalog import keys
from chalicelib.catalog.dynamo import decode_item, encode, translate_error

SK_PREFIX = "ETCDVERIFY#"


@dataclass(frozen=True)
class EtcdVerificationRecord:
    cluster: str
    backup_id: str
    ok: bool
    verified_at: str  # ISO-8601 UTC
    snapshot_at: str  # when the backup holding the snapshot finished
    keys: int = 0
    revision: int = 0
    expected_revision: int = 0
    sha256: str = ""
    where: str = ""  # which host or function ran the restore
    error: str = ""
    # True when no verification could run (no etcd binaries in this deployment): not a failure of the snapshot.
    unverified: bool = False


class EtcdVerificationCatalog:
    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._client = dynamodb_client
        self._table = table_name

    def record(self, result: EtcdVerificationRecord) -> None:
        """The latest verification of a backup's snapshot replaces an earlier one (the history is in the logs)."""
        item = {k: v for k, v in asdict(result).items()}
        attributes = {name: encode(value) for name, value in item.items()}
        attributes["pk"] = {"S": keys.cluster_pk(result.cluster)}
        attributes["sk"] = {"S": SK_PREFIX + keys.check_part("backup id", result.backup_id)}
        attributes["type"] = {"S": "etcd_verification"}
        self._call("put_item", TableName=self._table, Item=attributes)

    def get(self, cluster: str, backup_id: str) -> EtcdVerificationRecord | None:
        """The latest verification of that backup's snapshot, or None when none ran."""
        key = {
            "pk": {"S": keys.cluster_pk(cluster)},
            "sk": {"S": SK_PREFIX + keys.check_part("backup id", backup_id)},
        }
        found = self._call("get_item", TableName=self._table, Key=key, ConsistentRead=True)
        return _to_record(decode_item(found["Item"])) if "Item" in found else None

    def latest(self, cluster: str, *, ok_only: bool = True) -> EtcdVerificationRecord | None:
        """The verification of the newest backup (ids sort by time) that was verified (successfully)."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :sk)",
            "ExpressionAttributeValues": {":pk": {"S": keys.cluster_pk(cluster)}, ":sk": {"S": SK_PREFIX}},
            "ScanIndexForward": False,
        }
        while True:
            page = self._call("query", **query)
            for raw in page.get("Items", []):
                found = _to_record(decode_item(raw))
                if found.ok or not ok_only:
                    return found
            if "LastEvaluatedKey" not in page:
                return None
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            return dict(getattr(self._client, operation)(**kwargs))
        except ClientError as exc:
            raise translate_error(exc, self._table) from exc


def _to_record(item: dict[str, Any]) -> EtcdVerificationRecord:
    fields = EtcdVerificationRecord.__dataclass_fields__
    values = {name: item[name] for name in fields if name in item}
    for name in ("keys", "revision", "expected_revision"):
        values[name] = int(values.get(name, 0))
    values["ok"] = bool(values.get("ok", False))
    values["unverified"] = bool(values.get("unverified", False))
    return EtcdVerificationRecord(**values)
