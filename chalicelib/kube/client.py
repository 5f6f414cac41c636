"""KubeClient: the one place that speaks HTTP to the Kubernetes API (raw JSON, pooled, retried, thread-safe)."""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson

from chalicelib.core.resources import Resource
from chalicelib.kube.auth import load_kubeconfig
from chalicelib.kube.credentials import ClusterCredentials
from chalicelib.kube.discovery import discover
from chalicelib.kube.errors import (
    InvalidResponse,
    NotFound,
    Unreachable,
    WaitTimeout,
    error_for_status,
)
from chalicelib.kube.paging import ListPage, iter_pages
from chalicelib.kube.podexec import MAX_OUTPUT, STDERR, STDOUT, SUBPROTOCOLS, ExecResult, ExecTimeout, exit_code
from chalicelib.observability import logger

JSON = "application/json"
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",  # JSON is YAML, so the body is still serialized as JSON
}
FIELD_MANAGER = "lifeboat"
USER_AGENT = "lifeboat"
# 501 and 505 say the server will never do this; retrying them only wastes the Lambda's time.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "HEAD"})
# A server asking for minutes of silence would eat the invocation; beyond this we give up and let the caller decide.
RETRY_AFTER_CAP = 60.0
# Discovery asks each group once more at most: an unavailable aggregated API must not cost seconds of backoff.
DISCOVERY_RETRIES = 1
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
NAMESPACES = Resource(group="", version="v1", kind="Namespace", plural="namespaces", namespaced=False)


class KubeClient:
    """A thread-safe client for one cluster; share one instance between threads, ``close()`` it when done."""

    def __init__(
        self,
        credentials: ClusterCredentials,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_base: float = 0.2,
        backoff_max: float = 10.0,
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import urllib3

        self.credentials = credentials
        self.server = credentials.server.rstrip("/")
        self.discovery_errors: list[tuple[str, str]] = []
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._random = random.Random()
        self._tmpdir: str | None = None
        self._pool = self._build_pool(credentials, pool_size)
        # One server, so its connection pool is taken once: asking the manager for it on every request parsed the
        # URL again and took the manager's lock, which 16 restore threads contended for (a seventh of a restore's
        # client CPU). Through a proxy the manager decides how each request goes, so it still does.
        self._direct: Any = None if credentials.proxy_url else self._pool.connection_from_url(self.server)
        self._base_path = urlsplit(self.server).path.rstrip("/")  # a server URL may have a path (an API proxy's)
        # Client key files must outlive every connection; remove them even if close() is forgotten.
        self._cleanup = weakref.finalize(self, _remove_dir, self._tmpdir)

    @classmethod
    def from_kubeconfig(
        cls, text_or_dict: str | bytes | Mapping[str, Any], context: str | None = None, **kwargs: Any
    ) -> KubeClient:
        return cls(load_kubeconfig(text_or_dict, context), **kwargs)

    def _build_pool(self, credentials: ClusterCredentials, pool_size: int) -> Any:
        """The official client's urllib3 pool manager: it already turns kubeconfig TLS settings into pool options."""
        from kubernetes.client.configuration import Configuration
        from kubernetes.client.rest import RESTClientObject

        from chalicelib.kube.wire import lean_connections  # http.client with it: loaded when a client is built

        configuration = Configuration(host=self.server, proxy=credentials.proxy_url)
        configuration.verify_ssl = not credentials.insecure_skip_tls_verify
        configuration.ca_cert_data = credentials.ca_data.decode() if credentials.ca_data else None
        configuration.tls_server_name = credentials.tls_server_name
        configuration.connection_pool_maxsize = pool_size
        configuration.retries = False  # we retry ourselves, with backoff and Retry-After
        if credentials.client_cert is not None and credentials.client_key is not None:
            # ssl can only load a client certificate from files; they live in a private directory until close().
            self._tmpdir = tempfile.mkdtemp(prefix="lifeboat-kube-")
            configuration.cert_file = _private_file(self._tmpdir, "client.crt", credentials.client_cert)
            configuration.key_file = _private_file(self._tmpdir, "client.key", credentials.client_key)
        return lean_connections(RESTClientObject(configuration).pool_manager)

    # -- HTTP -------------------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
        retries: int | None = None,
        accept: str = JSON,
    ) -> dict[str, Any]:
        """One API call, retried on 429/5xx (and connection failures where safe); the parsed JSON answer."""
        import urllib3

        method = method.upper()
        target = path + (f"?{urlencode(_query(params))}" if params else "")
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        payload: bytes | None = None
        if body is not None:
            payload = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        max_retries = self._max_retries if retries is None else retries
        attempt = 0
        while True:
            provider = self.credentials.token_provider
            if provider is not None:
                headers["Authorization"] = f"Bearer {provider.token()}"
            sent = {"body": payload, "headers": headers, "timeout": self._timeout, "retries": False, "redirect": False}
            direct = self._direct
            try:
                if direct is not None:
                    response = direct.urlopen(method, self._base_path + target, assert_same_host=False, **sent)
                else:
                    response = self._pool.urlopen(method, self.server + target, **sent)
            except urllib3.exceptions.HTTPError as exc:
                unreachable, retryable = self._connection_error(method, path, exc)
                if retryable and attempt < max_retries:
                    self._pause(attempt, None, method, path, type(exc).__name__)
                    attempt += 1
                    continue
                raise unreachable from exc
            status = response.status
            if 200 <= status < 300:
                return self._decode(response.data, method, path)
            error = error_for_status(status, method, path, _parse_status(response.data), response.reason)
            if status in _RETRY_STATUSES and attempt < max_retries:
                self._pause(attempt, _retry_after(response.headers.get("Retry-After")), method, path, str(status))
                attempt += 1
                continue
            raise error

    def _connection_error(self, method: str, path: str, exc: Exception) -> tuple[Unreachable, bool]:
        import urllib3.exceptions as ue

        if isinstance(exc, ue.SSLError):
            # A certificate that does not verify will not verify on the next try either.
            message = f"TLS handshake with {self.server} failed ({method} {path}): {exc}"
            return Unreachable(message, method=method, path=path), False
        # A connect failure means nothing was sent, so even a POST may be repeated; after that only reads may.
        retryable = isinstance(exc, ue.ConnectTimeoutError | ue.NewConnectionError) or method in _IDEMPOTENT
        message = f"cannot reach the Kubernetes API at {self.server} ({method} {path}): {exc}"
        return Unreachable(message, method=method, path=path), retryable

    def _pause(self, attempt: int, retry_after: float | None, method: str, path: str, why: str) -> None:
        if retry_after is not None:
            delay = retry_after
        else:
            ceiling = min(self._backoff_max, self._backoff_base * (2**attempt))
            # Half fixed, half random: spreads 16 restore threads apart without ever retrying immediately.
            delay = ceiling / 2 + self._random.uniform(0, ceiling / 2)
        logger().warning(
            "retrying Kubernetes API call",
            extra={"method": method, "path": path, "cause": why, "attempt": attempt + 1, "delay": round(delay, 3)},
        )
        self._sleep(delay)

    @staticmethod
    def _decode(data: bytes, method: str, path: str) -> dict[str, Any]:
        if not data:
            return {}
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidResponse(f"{method} {path}: the answer is not JSON", method=method, path=path) from exc
        if not isinstance(decoded, dict):
            raise InvalidResponse(f"{method} {path}: the answer is not a JSON object", method=method, path=path)
        return decoded

    # -- objects ----------------------------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.request("GET", path, params=params)

    def create(self, resource: Resource, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        return self.request("POST", resource.collection_path(_namespace(resource, obj, namespace)), body=obj)

    def replace(self, resource: Resource, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        path = resource.object_path(_name(obj), _namespace(resource, obj, namespace))
        return self.request("PUT", path, body=obj)

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        patch_type: str = "merge",
    ) -> dict[str, Any]:
        if patch_type not in PATCH_TYPES:
            raise ValueError(f"unknown patch type {patch_type!r}; one of {sorted(PATCH_TYPES)}")
        params = {"fieldManager": FIELD_MANAGER} if patch_type == "apply" else None
        path = resource.object_path(name, _namespace(resource, {}, namespace))
        return self.request("PATCH", path, params=params, body=patch, content_type=PATCH_TYPES[patch_type])

    def delete(
        self, resource: Resource, name: str, namespace: str | None = None, *, propagation_policy: str | None = None
    ) -> dict[str, Any]:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation_policy}
        path = resource.object_path(name, _namespace(resource, {}, namespace))
        return self.request("DELETE", path, body=body if propagation_policy is not None else None)

    def get_object(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", resource.object_path(name, _namespace(resource, {}, namespace)))
        except NotFound:
            return None

    def list_pages(
        self,
        path: str,
        *,
        limit: int = 500,
        label_selector: str | None = None,
        field_selector: str | None = None,
        continue_token: str | None = None,
        metadata_first: Callable[[list[dict[str, Any]]], bool] | None = None,
    ) -> Iterator[ListPage]:
        """Pages of a collection, from ``continue_token`` when given; see ``ListPage.restarted`` for what a 410 on a
        continue token means to a consumer, and ``iter_pages`` for ``metadata_first``."""
        return iter_pages(
            lambda p, params, accept=JSON: self.request("GET", p, params=params, accept=accept),
            path,
            limit=limit,
            label_selector=label_selector,
            field_selector=field_selector,
            continue_token=continue_token,
            metadata_first=metadata_first,
        )

    # -- cluster ----------------------------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return self.request("GET", "/version")

    def discover(self) -> list[Resource]:
        """Every top-level resource type; groups that failed are skipped and listed in ``discovery_errors``."""
        resources, errors = discover(
            lambda path, accept=JSON: self.request("GET", path, retries=DISCOVERY_RETRIES, accept=accept)
        )
        self.discovery_errors = errors
        return resources

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name}
        if labels:
            metadata["labels"] = dict(labels)
        return self.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})

    def delete_namespace(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.delete(NAMESPACES, name)

    def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float,
        interval: float = 0.5,
        *,
        what: str = "condition",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Poll ``predicate`` until it is true; WaitTimeout names ``what`` when ``timeout`` seconds pass first."""
        deadline = clock() + timeout
        while not predicate():
            if clock() >= deadline:
                raise WaitTimeout(f"{what} not reached within {timeout:g}s")
            self._sleep(interval)

    def wait_for_crd_established(self, name: str, timeout: float = 30) -> None:
        path = f"{CRD_PATH}/{quote(name, safe='')}"

        def established() -> bool:
            try:
                crd = self.request("GET", path)
            except NotFound:
                return False
            conditions = (crd.get("status") or {}).get("conditions") or []
            return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

        self.wait_for(established, timeout, 0.2, what=f"CustomResourceDefinition {name} Established")

    # -- exec -------------------------------------------------------------------------------------------------------

    def exec(
        self, namespace: str, pod: str, container: str, command: list[str] | tuple[str, ...], timeout: float
    ) -> ExecResult:
        """Run ``command`` in a pod's container through the exec subresource (WebSocket, v5/v4 channel protocol,
        see ``podexec``) and wait at most ``timeout`` seconds for it to end. No stdin, no TTY."""
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec"
        where = f"exec in {namespace}/{pod} container {container}"
        deadline = time.monotonic() + timeout
        stream = self._open_exec(path, [("container", container), *(("command", c) for c in command)], timeout)
        try:
            while stream.is_open():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ExecTimeout(f"{where}: {list(command)} did not end within {timeout:g}s", path=path)
                stream.update(timeout=min(left, 1.0))
            stdout = stream.read_channel(STDOUT)[:MAX_OUTPUT]
            stderr = stream.read_channel(STDERR)[:MAX_OUTPUT]
            from kubernetes.stream.ws_client import ERROR_CHANNEL

            return ExecResult(exit_code(stream.read_channel(ERROR_CHANNEL), where), stdout, stderr)
        finally:
            stream.close()

    def _open_exec(self, path: str, params: list[tuple[str, str]], timeout: float) -> Any:
        """The kubernetes package's channel WebSocket client, connected with this client's credentials."""
        import ssl

        import websocket
        from kubernetes.client.configuration import Configuration
        from kubernetes.stream.ws_client import WSClient, get_websocket_url

        query = [*params, ("stdout", "1"), ("stderr", "1")]
        url = get_websocket_url(self.server + path, query)  # type: ignore[no-untyped-call]
        headers = {"sec-websocket-protocol": ",".join(SUBPROTOCOLS)}
        if self.credentials.token_provider is not None:
            headers["authorization"] = f"Bearer {self.credentials.token_provider.token()}"
        configuration = Configuration(host=self.server)
        configuration.verify_ssl = not self.credentials.insecure_skip_tls_verify
        configuration.tls_server_name = self.credentials.tls_server_name
        configuration.cert_file = str(Path(self._tmpdir) / "client.crt") if self._tmpdir else None
        configuration.key_file = str(Path(self._tmpdir) / "client.key") if self._tmpdir else None
        with tempfile.TemporaryDirectory(prefix="lifeboat-exec-") as tmp:
            # The stream module reads the CA from a file only; ssl loads it during the handshake, so it may go after.
            if self.credentials.ca_data:
                configuration.ssl_ca_cert = _private_file(tmp, "ca.crt", self.credentials.ca_data)
            # The stream module connects without a timeout, so websocket-client's module default bounds the connect
            # and every read; nothing else in Lifeboat uses websocket-client.
            previous = websocket.getdefaulttimeout()
            try:
                websocket.setdefaulttimeout(timeout)
                return WSClient(configuration, url, headers, capture_all=False, binary=True)  # type: ignore[no-untyped-call]
            except websocket.WebSocketBadStatusException as exc:
                raise error_for_status(exc.status_code, "GET", path, _parse_status(exc.resp_body or b"")) from exc
            except (websocket.WebSocketException, ssl.SSLError, OSError) as exc:
                raise Unreachable(f"exec {path} on {self.server}: {exc}", method="GET", path=path) from exc
            finally:
                websocket.setdefaulttimeout(previous)

    # -- lifecycle --------------------------------------------------------------------------------------------------

    def close(self) -> None:
        self._direct = None  # a request after this goes through the manager, which opens a new pool
        self._pool.clear()
        self._cleanup()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KubeClient({self.server!r})"


def _query(params: Mapping[str, Any]) -> dict[str, str]:
    """Query values as the API server spells them (lowercase booleans); None means leave the parameter out."""
    query = {}
    for key, value in params.items():
        if value is None:
            continue
        query[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return query


def _parse_status(data: bytes) -> Any:
    try:
        return orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return None  # an HTML error page from a proxy, say; the HTTP reason phrase is all we report


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date: the API server never sends one, so exponential backoff is good enough
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def _name(obj: Mapping[str, Any]) -> str:
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        raise ValueError("object has no metadata.name")
    return str(name)


def _namespace(resource: Resource, obj: Mapping[str, Any], namespace: str | None) -> str | None:
    if not resource.namespaced:
        return None
    namespace = namespace or (obj.get("metadata") or {}).get("namespace")
    if not namespace:
        raise ValueError(f"{resource.group_resource} is namespaced; a namespace is required")
    return str(namespace)


def _private_file(directory: str, name: str, content: bytes) -> str:
    path = Path(directory) / name
    path.touch(mode=0o600)
    path.write_bytes(content)
    return str(path)


def _remove_dir(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)
