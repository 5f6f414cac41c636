"""moto's server whose per-request costs do not grow with the data: ``python -m bench.moto_flat -H HOST -p PORT``.

BENCHMARK-ONLY PATCHES OF MOTO, applied in this server process alone, for measuring a client's own work on a table
of thousands of items and a queue of thousands of messages. The cost of one DynamoDB or SQS request does not depend
on the table's or queue's size; stock moto's (5.x) does, in three places the dispatcher's tick meets on every due
run:

- TransactWriteItems deep-copies every table it names before applying the transaction, so it can put the copy back
  if a condition fails. Here the snapshot holds only the items the transaction touches (deep copies of those, or
  "absent"), and a cancelled transaction puts exactly those back. Conditions, cancellation reasons and the order
  items are applied in remain stock moto's code: the table copy is skipped by handing moto's transaction a ``copy``
  whose ``deepcopy`` returns a table itself, so the rollback moto then does (putting the "copy" back) changes nothing.
- Query on a table's key sorts and scans every item of the table for the partition asked for. Here it reads only
  that partition, as DynamoDB does; the sorting, paging, filtering and projection after it are stock moto's. Queries
  on an index are left as they are.
- SendMessage and SendMessageBatch read the queue's attributes for every message sent, and those count the queue's
  messages (three scans with a clock call per message): a send into a queue of 1,000 messages takes moto ~0.5 s.
  Here a send into a standard queue skips them (it reads only ``ContentBasedDeduplication``, which only FIFO queues
  have); every other read of the attributes, GetQueueAttributes among them, counts as stock moto does.

``bench/thousand.py`` runs its tick on this server and on stock moto, and says which figure is which.
"""

from __future__ import annotations

import copy
import threading
import types
from typing import Any

from moto import server
from moto.dynamodb import models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.sqs.models import Queue, SQSBackend

_stock_transact = models.DynamoDBBackend.transact_write_items
_stock_query = Table.query
_stock_all_items = Table.all_items
_stock_send = SQSBackend.send_message
_stock_attributes = Queue.attributes.fget  # type: ignore[attr-defined]
# The server answers on threads: what the request on this thread is doing (a key Query's partition, a send).
_querying = threading.local()
_sending = threading.local()


def _no_table_copy(value: Any, memo: Any = None) -> Any:
    return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Table, DynamoType, Any, Any]]:
    """(table, hash key, range key, a deep copy of the item or None) for every item the transaction names."""
    touched = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName"))
        key = op.get("Item") if "Item" in op else op.get("Key")
        if table is None or not key or table.hash_key_attr not in key:
            continue  # moto's own validation answers for these
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
        current = table.get_item(hash_key, range_key) if (range_key or not table.has_range_key) else None
        touched.append((table, hash_key, range_key, copy.deepcopy(current)))
    return touched


def _restore(touched: list[tuple[Table, DynamoType, Any, Any]]) -> None:
    for table, hash_key, range_key, item in reversed(touched):
        if range_key is not None:
            if item is None:
                table.items[hash_key].pop(range_key, None)
            else:
                table.items[hash_key][range_key] = item
        elif item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    touched = _touched(self, transact_items)
    try:
        _stock_transact(self, transact_items)
    except Exception:
        _restore(touched)
        raise


def query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name or hash_key is None or not self.range_key_attr:
        return _stock_query(self, hash_key, *args, **kwargs)
    _querying.partition = hash_key
    try:
        return _stock_query(self, hash_key, *args, **kwargs)
    finally:
        _querying.partition = None


def all_items(self: Table) -> Any:
    partition = getattr(_querying, "partition", None)
    if partition is None:
        return _stock_all_items(self)
    items = self.items.get(partition)  # .get: the table's defaultdict must not grow an empty partition
    return list(items.values()) if items else []


def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
    _sending.active = True
    try:
        return _stock_send(self, *args, **kwargs)
    finally:
        _sending.active = False


def attributes(self: Queue) -> Any:
    if getattr(_sending, "active", False) and not self.fifo_queue:
        return {}  # a standard queue has no ContentBasedDeduplication: stock moto's lookup finds nothing either
    return _stock_attributes(self)


# moto's transaction reads ``copy.deepcopy`` from its module's globals: only that module sees the table-sparing copy.
models.copy = types.SimpleNamespace(deepcopy=_no_table_copy)  # type: ignore[attr-defined]
models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
Table.query = query  # type: ignore[method-assign]
Table.all_items = all_items  # type: ignore[method-assign]
SQSBackend.send_message = send_message  # type: ignore[method-assign]
Queue.attributes = property(attributes)  # type: ignore[assignment,method-assign]

if __name__ == "__main__":
    server.main()
