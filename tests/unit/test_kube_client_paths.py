"""Where KubeClient sends a request: the server URL's own path kept, a proxy given the whole URL, after close too."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chalicelib.kube import ClusterCredentials, KubeClient, StaticToken


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with ``{}`` and records the request target it was sent."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def test_a_server_url_with_a_path_keeps_it(recorder: tuple[str, list[str]]) -> None:
    url, seen = recorder
    credentials = ClusterCredentials(server=f"{url}/k8s/clusters/c-1/", token_provider=StaticToken("t"))
    with KubeClient(credentials) as kube:
        kube.get("/api/v1/namespaces", params={"limit": 5})
        kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": "a"}})
    assert seen == ["GET /k8s/clusters/c-1/api/v1/namespaces?limit=5", "POST /k8s/clusters/c-1/api/v1/namespaces"]


def test_requests_after_close_still_reach_the_server(recorder: tuple[str, list[str]]) -> None:
    url, seen = recorder
    kube = KubeClient(ClusterCredentials(server=url, token_provider=StaticToken("t")))
    kube.get("/version")
    kube.close()
    assert kube.get("/version") == {}
    assert seen == ["GET /version", "GET /version"]


def test_through_a_proxy_the_request_names_the_whole_url(recorder: tuple[str, list[str]]) -> None:
    proxy, seen = recorder
    credentials = ClusterCredentials(
        server="http://kube.internal:6443", token_provider=StaticToken("t"), proxy_url=proxy
    )
    with KubeClient(credentials) as kube:
        kube.get("/version")
    assert seen == ["GET http://kube.internal:6443/version"]  # a forward proxy's request form
