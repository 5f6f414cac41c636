"""AWS client wrappers for tests against moto."""

from __future__ import annotations

import threading
from typing import Any


class SerializedClient:
    """A boto3 client whose calls run one at a time.

    DynamoDB applies each request atomically; moto's in-process backend does not guard against threads, so a race
    test would otherwise test moto. Threads still interleave freely *between* requests, which is where races live.
    """

    _lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name in ("get_paginator", "get_waiter"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with SerializedClient._lock:
                return attr(*args, **kwargs)

        return call
