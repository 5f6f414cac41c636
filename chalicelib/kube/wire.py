"""The kube client's connections: a request in one write, and a response's headers read without the email parser.

A restore is one HTTP request an object, and on a fast server the client's interpreter is what it waits for. Two
costs of http.client are the client's own there: urllib3 writes a request's head and then its body (two TLS
records and segments, two reads on the server), and http.client parses every response's headers with the email
package's feed parser (~35 µs a response on these machines, more with 16 threads on one interpreter). These
connections send head and body together and read well-formed headers directly; anything else (a folded line, a
line without a name) goes to the standard library's parser, as before.
"""

from __future__ import annotations

import email.parser
import http.client
import re
import types
from typing import Any

# A header line as the email parser takes it for one: a name of printable characters other than ':', then ':'.
_HEADER = re.compile(rb"([!-9;-~]+):")
_END = (b"\r\n", b"\n", b"")


def parse_headers(fp: Any, _class: type[http.client.HTTPMessage] = http.client.HTTPMessage) -> Any:
    """``http.client.parse_headers``: the same message, built without the feed parser when every line is a header."""
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]  # the stdlib's reader: same limits
    message = _class()
    for line in lines:
        if line in _END:
            break
        match = _HEADER.match(line)
        if match is None:
            text = b"".join(lines).decode("iso-8859-1")
            return email.parser.Parser(_class=_class).parsestr(text)
        value = line[match.end() :].decode("iso-8859-1")
        message[match.group(1).decode("iso-8859-1")] = value.lstrip(" \t").rstrip("\r\n")
    message.set_payload("")  # as the feed parser leaves it: no body after the headers
    return message


def _reading_headers_with(function: Any, parser: Any) -> Any:
    """``function`` of http.client, its global ``parse_headers`` bound to ``parser`` (the stdlib's code, unchanged)."""
    namespace = dict(function.__globals__, parse_headers=parser)
    copy = types.FunctionType(function.__code__, namespace, function.__name__, function.__defaults__)
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__qualname__ = function.__qualname__
    return copy


class LeanResponse(http.client.HTTPResponse):
    """http.client's response, whose ``begin`` reads the headers with ``parse_headers`` above."""

    begin = _reading_headers_with(http.client.HTTPResponse.begin, parse_headers)


class _OneWrite:
    """Mixed into a urllib3 connection: holds the head back until the body's first write and sends them together.

    A request without a bytes body is sent as urllib3 sends it.
    """

    _head: bytes | None = None
    _body_follows = False
    response_class = LeanResponse

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


def lean_connections(pool_manager: Any) -> Any:
    """``pool_manager`` (a urllib3 PoolManager or ProxyManager), its pools now making the connections above.

    Each pool class it would use is kept, with a connection class derived from that pool's own, so TLS, proxy
    and SOCKS settings work as before."""
    pools = {}
    for scheme, pool_cls in pool_manager.pool_classes_by_scheme.items():
        connection = type(pool_cls.ConnectionCls.__name__, (_OneWrite, pool_cls.ConnectionCls), {})
        pools[scheme] = type(pool_cls.__name__, (pool_cls,), {"ConnectionCls": connection})
    pool_manager.pool_classes_by_scheme = pools
    return pool_manager
