"""One-write connections: head and body in one send, other bodies sent as before, the manager's classes kept."""

from __future__ import annotations

import http.client
import io
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3

from chalicelib.kube.wire import LeanResponse, lean_connections, parse_headers


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Folded: one\r\n two\r\n\r\n"
                b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            )
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("Warning", "299 - one")
        self.send_header("Warning", "299 - two")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """What this thread hands to sendall from now on, one item per call."""
    sent: list[bytes] = []
    me = threading.get_ident()
    original = socket.socket.sendall

    def counted(sock: Any, data: Any, *args: Any) -> Any:
        if threading.get_ident() == me:
            sent.append(bytes(data))
        return original(sock, data, *args)

    monkeypatch.setattr(socket.socket, "sendall", counted)
    return sent


def test_a_bytes_body_leaves_with_its_head(server: str, writes: list[bytes]) -> None:
    pool = lean_connections(urllib3.PoolManager())
    for body in (b'{"a": 1}', b"x" * 300_000):
        response = pool.urlopen("POST", server + "/objects", body=body, headers={"Content-Type": "application/json"})
        assert (response.status, response.data) == (200, body)
        assert writes[-1].startswith(b"POST /objects HTTP/1.1\r\n") and writes[-1].endswith(b"\r\n\r\n" + body)
    assert len(writes) == 2


def test_requests_without_a_bytes_body_are_sent_as_before(server: str, writes: list[bytes]) -> None:
    pool = lean_connections(urllib3.PoolManager())
    assert pool.urlopen("GET", server + "/version").data == b"ok"
    assert len(writes) == 1
    chunked = pool.urlopen("POST", server + "/objects", body=iter([b"one", b"two"]))
    assert chunked.data == b"onetwo"
    assert len(writes) == 1 + 4  # head, two chunks, the last chunk: unchanged
    assert pool.urlopen("PUT", server + "/objects", body=b"").data == b""


def test_a_failed_request_leaves_nothing_held_for_the_next(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = lean_connections(urllib3.PoolManager())
    original = http.client.HTTPConnection.send
    calls = {"n": 0}

    def failing_once(self: Any, data: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionResetError("gone")
        original(self, data)

    monkeypatch.setattr(http.client.HTTPConnection, "send", failing_once)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        pool.urlopen("POST", server + "/objects", body=b"first", retries=False)
    response = pool.urlopen("POST", server + "/objects", body=b"second", retries=False)
    assert response.data == b"second"


def test_each_pool_keeps_its_own_classes() -> None:
    plain = urllib3.PoolManager()
    before = dict(plain.pool_classes_by_scheme)
    lean_connections(plain)
    proxy = lean_connections(urllib3.ProxyManager("http://127.0.0.1:3128"))
    assert isinstance(proxy, urllib3.ProxyManager)
    for manager in (plain, proxy):
        for scheme, pool_cls in manager.pool_classes_by_scheme.items():
            assert issubclass(pool_cls, before[scheme])
            assert issubclass(pool_cls.ConnectionCls, before[scheme].ConnectionCls)


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Type: application/json\r\nContent-Length: 12\r\nDate: Fri, 04 Dec 2026 04:00:00 GMT\r\n\r\n",
        b"Audit-Id: 1f2e\r\nWarning: 299 - a\r\nWarning: 299 - b\r\nX-Empty:\r\nX-Spaces:  \t v  \r\n\r\n",
        b"Retry-After: 1\nContent-Length: 0\n\n",  # bare LF line ends
        b"X-Latin: caf\xe9\r\n\r\n",
        b"X-Folded: one\r\n two\r\nContent-Length: 3\r\n\r\n",  # an obsolete folded line: the stdlib's parser
        b"Not a header\r\nContent-Length: 3\r\n\r\n",  # no name: the stdlib's parser, with its defect
        b"\r\n",
    ],
)
def test_headers_are_parsed_as_the_standard_library_parses_them(head: bytes) -> None:
    ours, theirs = parse_headers(io.BytesIO(head + b"body")), http.client.parse_headers(io.BytesIO(head + b"body"))
    assert isinstance(ours, http.client.HTTPMessage)
    assert list(ours.items()) == list(theirs.items())
    assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]
    assert ours.get_payload() == theirs.get_payload()
    assert ours.get_all("warning") == theirs.get_all("warning")


def test_responses_are_read_with_the_lean_parser(server: str) -> None:
    pool = lean_connections(urllib3.PoolManager())
    response = pool.urlopen("GET", server + "/version")
    assert isinstance(response._original_response, LeanResponse)
    assert response.headers.getlist("Warning") == ["299 - one", "299 - two"]
    chunked = pool.urlopen("GET", server + "/chunked")
    assert chunked.data == b"abcde"
    plain = urllib3.PoolManager().urlopen("GET", server + "/chunked")
    assert list(chunked.headers.items()) == list(plain.headers.items()) and chunked.headers["X-Folded"] == "one two"
