"""Workers put the backup or restore id on every log record while they work on it, and take it off after."""

from __future__ import annotations

from typing import Any

from chalicelib.backup.worker import handle_message
from chalicelib.core.jobs import ClusterRef, ShardMessage
from chalicelib.observability import logger


def test_a_shard_message_logs_with_its_backup_id_and_removes_it_after() -> None:
    seen: list[dict[str, Any]] = []

    class Service:
        def run_shard(self, msg: ShardMessage, *, remaining_ms: Any = None) -> dict[str, Any]:
            seen.append(dict(logger().get_current_keys()))
            return {"status": "Done"}

    message = ShardMessage(ClusterRef("prod", {"type": "eks", "cluster_name": "prod"}), "20261122T101500Z-3fa9c2", "")
    assert handle_message(Service(), message.to_dict())["status"] == "Done"  # type: ignore[arg-type]
    assert seen[0]["backup_id"] == "20261122T101500Z-3fa9c2" and seen[0]["cluster"] == "prod"
    keys = logger().get_current_keys()
    assert "backup_id" not in keys and "cluster" not in keys
