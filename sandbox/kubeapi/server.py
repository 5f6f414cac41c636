"""KubeAPIServer: the test server's public face (start/stop, credentials, kubeconfig, test controls, bulk load)."""

from __future__ import annotations

import base64
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from sandbox.kubeapi import tls
from sandbox.kubeapi.allocators import KUBERNETES_SERVICE_IP
from sandbox.kubeapi.app import App
from sandbox.kubeapi.errors import ApiError, bad_request
from sandbox.kubeapi.faults import WRITE_METHODS, Faults, ForbidRule, RequestRecord
from sandbox.kubeapi.objects import ObjectAPI
from sandbox.kubeapi.podexec import ExecHandlers
from sandbox.kubeapi.registry import Registry
from sandbox.kubeapi.snapshotter import Snapshotter
from sandbox.kubeapi.store import Store
from sandbox.kubeapi.transport import Server

DEFAULT_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
# Seeding order: types before their objects, namespaces before what lives in them.
_LOAD_PRIORITY = {("apiextensions.k8s.io", "CustomResourceDefinition"): 0, ("", "Namespace"): 1}


class KubeAPIServer:
    """An in-memory kube-apiserver on 127.0.0.1 for tests, the sandbox and benchmarks."""

    def __init__(
        self,
        tls: bool = True,
        token: str | None = None,
        *,
        port: int = 0,
        user: str = "kubernetes-admin",
        namespace_delete_delay: float = 0.2,
        namespace_controllers: bool = False,
        snapshotter: bool = False,
        snapshot_ready_delay: float = 0.0,
    ) -> None:
        """namespace_delete_delay: seconds a deleted namespace stays Terminating before it and its content go
        (a real namespace controller takes a moment too); 0 removes everything within the DELETE.

        namespace_controllers: add the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap to every
        namespace, as a real cluster's controllers do. Off by default so a new namespace holds exactly what a test
        put there, like kube-apiserver without kube-controller-manager (envtest): a Pod is then refused until its
        ServiceAccount (`default` when it names none) has been created.

        snapshotter: run the simulated external-snapshotter (``self.snapshotter``), whose snapshots become ready
        ``snapshot_ready_delay`` seconds after they are bound. Off by default, like a cluster without it."""
        self.tls = tls
        self.token = token or secrets.token_urlsafe(32)
        self.user = user
        self._port = port
        self._certs = _generate_certs() if tls else None
        self.ca_pem: bytes = self._certs.ca_pem if self._certs else b""
        self._store = Store()
        self._api = ObjectAPI(self._store, Registry(), self.ca_pem, namespace_delete_delay, namespace_controllers)
        self.snapshotter = Snapshotter(self._api, snapshot_ready_delay, enabled=snapshotter)
        self._app = App(self._api, self.token, user, "127.0.0.1:6443", self.load)
        self._http: Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self._bootstrap()

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> KubeAPIServer:
        context = self._certs.server_context() if self._certs else None
        self._http = Server(("127.0.0.1", self._port), self._app, context)
        port = self._http.server_address[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        self._app.server_address = f"127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.1}, name=f"kubeapi-{port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is None:
            return
        self._http.shutdown()
        self._http.close_connections()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http = None

    def __enter__(self) -> KubeAPIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bootstrap(self) -> None:
        ns_type = self._api.registry.get("", "namespaces")
        svc_type = self._api.registry.get("", "services")
        assert ns_type is not None and svc_type is not None
        for name in DEFAULT_NAMESPACES:
            self._api.create(ns_type, "v1", None, {"metadata": {"name": name}})
        service = {
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "clusterIP": KUBERNETES_SERVICE_IP,
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            },
        }
        self._api.create(svc_type, "v1", "default", service)

    # -- credentials -------------------------------------------------------------------------------------------

    def kubeconfig(self, context: str = "lifeboat-sandbox") -> dict[str, Any]:
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": "default"}}],
            "current-context": context,
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | os.PathLike[str], context: str = "lifeboat-sandbox") -> None:
        import yaml

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # The file holds the bearer token: readable by the owner only.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(self.kubeconfig(context), f, sort_keys=False)

    # -- test controls -----------------------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._app.faults

    @property
    def exec_handlers(self) -> ExecHandlers:
        """The commands pods/exec "runs": register what each prints and its exit code (``podexec``)."""
        return self._app.exec_handlers

    def forbid(self, target: str | None, verbs: Iterable[str] = ("list",)) -> None:
        """Answer 403 for these verbs on a resource ("secrets", "deployments.apps") or URL paths matching a regex;
        None lifts every rule (same as allow_all)."""
        if target is None:
            self.allow_all()
            return
        self._app.forbidden.append(ForbidRule.parse(target, tuple(verbs)))

    def mutate_on_create(self, plural: str, change: Callable[[dict[str, Any]], None] | None) -> None:
        """Change every new object of ``plural`` (e.g. "configmaps") before it is stored, as a mutating admission
        webhook would; None removes the change."""
        if change is None:
            self._api.hooks.webhooks.pop(plural, None)
        else:
            self._api.hooks.webhooks[plural] = change

    def allow_all(self) -> None:
        self._app.forbidden.clear()

    def serve_discovery(self, *, aggregated: bool = True, stale: Iterable[str] = ()) -> None:
        """Serve ``/api`` and ``/apis`` as aggregated discovery (a v1.30 server's default) or only as the plain
        documents (a server before v1.26); ``stale``: group/versions (``apps/v1``, ``v1``) the aggregated document
        marks Stale, as it does those of an aggregated API server that does not answer."""
        self._app.aggregated_discovery = aggregated
        self._app.stale_discovery = frozenset(stale)

    def expire_continue_tokens(self) -> None:
        """Every continue token handed out so far now answers 410 Expired, as after an etcd compaction."""
        with self._store.lock:
            self._store.compact()

    @property
    def requests(self) -> list[RequestRecord]:
        with self._app.requests_lock:
            return list(self._app.requests)

    def clear_requests(self) -> None:
        with self._app.requests_lock:
            self._app.requests.clear()

    def write_requests(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.method in WRITE_METHODS]

    # -- seeding -----------------------------------------------------------------------------------------------

    def load(self, objects: Iterable[dict[str, Any]]) -> int:
        """Store objects without HTTP, with the same defaults, validation and metadata as a create.

        A given status is kept (as if controllers had written it), unlike a create over the API. Definitions and
        namespaces are loaded before the objects that need them. The first invalid object raises its ApiError;
        the objects before it stay loaded. Returns the number of objects stored.
        """
        registry = self._api.registry
        items = list(objects)
        if not all(isinstance(o, dict) for o in items):
            raise bad_request("the bulk load takes a list of objects")
        items.sort(key=lambda o: _LOAD_PRIORITY.get(_group_kind(o), 2))
        with self._store.lock:
            for obj in items:
                group, _, version = str(obj.get("apiVersion") or "").rpartition("/")
                rtype = registry.by_kind(group, str(obj.get("kind") or ""))
                if rtype is None or version not in rtype.versions or not rtype.storable:
                    kind, api_version = obj.get("kind"), obj.get("apiVersion")
                    raise ApiError(400, f'no kind "{kind}" is registered for version "{api_version}"')
                namespace = (obj.get("metadata") or {}).get("namespace") or "default" if rtype.namespaced else None
                # A private copy: defaulting works in place and must not touch the caller's objects.
                private = orjson.loads(orjson.dumps(obj))
                # Objects dumped from a cluster carry server fields; seeding takes them as new objects.
                private.get("metadata", {}).pop("resourceVersion", None)
                self._api.create(rtype, version, namespace, private, keep_status=True, respond=False)
        return len(items)


def _group_kind(obj: dict[str, Any]) -> tuple[str, str]:
    return str(obj.get("apiVersion") or "").rpartition("/")[0], str(obj.get("kind") or "")


def _generate_certs() -> tls.Certificates:
    return tls.generate()
