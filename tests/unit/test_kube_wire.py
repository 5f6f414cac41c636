"""One-write connections: head and body in one send, other bodies sent as before, the manager's classes kept."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3

from chalicelib.kube.wire import send_in_one_write


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
        self.send_response(200)
        self.send_header("Content-Length", "2")
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
    pool = send_in_one_write(urllib3.PoolManager())
    for body in (b'{"a": 1}', b"x" * 300_000):
        response = pool.urlopen("POST", server + "/objects", body=body, headers={"Content-Type": "application/json"})
        assert (response.status, response.data) == (200, body)
        assert writes[-1].startswith(b"POST /objects HTTP/1.1\r\n") and writes[-1].endswith(b"\r\n\r\n" + body)
    assert len(writes) == 2


def test_requests_without_a_bytes_body_are_sent_as_before(server: str, writes: list[bytes]) -> None:
    pool = send_in_one_write(urllib3.PoolManager())
    assert pool.urlopen("GET", server + "/version").data == b"ok"
    assert len(writes) == 1
    chunked = pool.urlopen("POST", server + "/objects", body=iter([b"one", b"two"]))
    assert chunked.data == b"onetwo"
    assert len(writes) == 1 + 4  # head, two chunks, the last chunk: unchanged
    assert pool.urlopen("PUT", server + "/objects", body=b"").data == b""


def test_a_failed_request_leaves_nothing_held_for_the_next(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = send_in_one_write(urllib3.PoolManager())
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
    send_in_one_write(plain)
    proxy = send_in_one_write(urllib3.ProxyManager("http://127.0.0.1:3128"))
    assert isinstance(proxy, urllib3.ProxyManager)
    for manager in (plain, proxy):
        for scheme, pool_cls in manager.pool_classes_by_scheme.items():
            assert issubclass(pool_cls, before[scheme])
            assert issubclass(pool_cls.ConnectionCls, before[scheme].ConnectionCls)
