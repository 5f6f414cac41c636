"""moto's server, handling one request at a time: ``python -m bench.moto_serial -H HOST -p PORT``.

The stock server handles requests on threads without a lock, so two concurrent UpdateItems of one DynamoDB item can
both read the old value and one of them is lost; AWS applies every item write atomically. A benchmark whose worker
processes update one item concurrently (the remaining-shards counter of a sharded backup) needs AWS's behaviour.
The GIL runs one moto request at a time anyway, so the lock costs next to nothing.
"""

from __future__ import annotations

import threading
from typing import Any

from moto import server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_lock = threading.Lock()
_dispatch = DomainDispatcherApplication.__call__


def _serial(self: DomainDispatcherApplication, environ: dict[str, Any], start_response: Any) -> Any:
    with _lock:
        response = _dispatch(self, environ, start_response)
        try:
            return [b"".join(response)]  # the whole body is produced under the lock
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()


DomainDispatcherApplication.__call__ = _serial  # type: ignore[method-assign]

if __name__ == "__main__":
    server.main()
