"""HTTP/1.1 plumbing: a threaded server with keep-alive and TLS, handing each request to the App."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Mapping
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from sandbox.kubeapi import podexec
from sandbox.kubeapi.app import App

_REASON_PHRASES = {s.value: s.phrase for s in HTTPStatus}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App, context: ssl.SSLContext | None) -> None:
        self.app = app
        self.context = context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, so a slow client never stalls accept().
        conn = request
        if self.context is not None:
            try:
                conn = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        with self.connections_lock:
            self.connections.add(conn)
        try:
            Handler(conn, client_address, self)
        finally:
            with self.connections_lock:
                self.connections.discard(conn)
            if conn is not request:
                _close(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are routine for a test server; stay quiet instead of printing tracebacks."""

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            _close(conn)


def _close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        conn.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 300  # idle keep-alive connections are closed after this
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        """No per-request lines on stderr; the App keeps a request log the tests can read."""

    def _serve(self) -> None:
        url = urlsplit(self.path)
        if (self.headers.get("Upgrade") or "").lower() == "websocket":
            self._upgrade(url.path, parse_qsl(url.query, keep_blank_values=True))
            return
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        raw = self._read_body()
        headers_in = cast("Mapping[str, str]", self.headers)  # an email.message.Message: case-insensitive get()
        status, content_type, headers, body = self.server.app.handle(self.command, url.path, query, headers_in, raw)
        lines = [
            f"HTTP/1.1 {status} {_REASON_PHRASES.get(status, '')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            f"Date: {formatdate(usegmt=True)}",
            "Cache-Control: no-cache, private",
            "X-Content-Type-Options: nosniff",
        ]
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _upgrade(self, path: str, query: list[tuple[str, str]]) -> None:
        """pods/exec over WebSocket (``podexec``): the connection is the stream's and closes after it."""
        headers_in = cast("Mapping[str, str]", self.headers)
        self.close_connection = True
        reply, call = self.server.app.upgrade(self.command, path, query, headers_in)
        if call is None:
            assert reply is not None
            status, content_type, headers, body = reply
            lines = [f"HTTP/1.1 {status} {_REASON_PHRASES.get(status, '')}", f"Content-Type: {content_type}"]
            lines += [f"Content-Length: {len(body)}", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            return
        self.wfile.write(podexec.handshake(headers_in, call.subprotocol))
        self.wfile.flush()
        self.wfile.write(podexec.stream(self.server.app.exec_handlers, call))
        self.wfile.flush()

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
