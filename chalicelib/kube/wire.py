"""Connections that send a request's head and its body in one write: one TLS record and one segment, not two."""

from __future__ import annotations

from typing import Any


class _OneWrite:
    """Mixed into a urllib3 connection: holds the head back until the body's first write and sends them together.

    urllib3 writes the head and then each body chunk. Two writes per request cost a second TLS record, a second
    segment, and the other side's second read; every restored object is such a request. A request without a
    bytes body is sent as urllib3 sends it.
    """

    _head: bytes | None = None
    _body_follows = False

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any) -> None:
        self._body_follows = isinstance(body, bytes) and bool(body)
        try:
            super().request(method, url, body=body, headers=headers, **kwargs)  # type: ignore[misc]
        finally:
            head, self._head, self._body_follows = self._head, None, False
        if head is not None:  # no body write followed (not how urllib3 sends bytes): the head must not wait
            super().send(head)  # type: ignore[misc]

    def send(self, data: Any) -> None:
        if self._body_follows:
            if self._head is None:
                self._head = bytes(data)
                return
            data, self._head, self._body_follows = self._head + bytes(data), None, False
        super().send(data)  # type: ignore[misc]


def send_in_one_write(pool_manager: Any) -> Any:
    """``pool_manager`` (a urllib3 PoolManager or ProxyManager), its pools now making one-write connections.

    Each pool class it would use is kept, with a connection class derived from that pool's own, so TLS, proxy
    and SOCKS settings work as before."""
    pools = {}
    for scheme, pool_cls in pool_manager.pool_classes_by_scheme.items():
        connection = type(pool_cls.ConnectionCls.__name__, (_OneWrite, pool_cls.ConnectionCls), {})
        pools[scheme] = type(pool_cls.__name__, (pool_cls,), {"ConnectionCls": connection})
    pool_manager.pool_classes_by_scheme = pools
    return pool_manager
