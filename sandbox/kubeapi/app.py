"""Request dispatch, free of HTTP plumbing: authentication, injected faults, authorization, then the API itself."""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from sandbox.kubeapi import patch, podexec, reviews, routing
from sandbox.kubeapi.catalog import ResourceType
from sandbox.kubeapi.errors import (
    ApiError,
    bad_request,
    forbidden,
    method_not_allowed,
    resource_not_found,
)
from sandbox.kubeapi.faults import Faults, ForbidRule, RequestRecord
from sandbox.kubeapi.objects import ObjectAPI
from sandbox.kubeapi.registry import (
    aggregated_discovery_doc,
    core_versions_doc,
    group_doc,
    group_list_doc,
    resource_list_doc,
    version_doc,
)

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BODY_TYPES = ("application/json", "application/yaml")
_VERB_BY_METHOD = {"POST": "create", "PUT": "update", "PATCH": "patch"}

Reply = tuple[int, str, dict[str, str], bytes]
logger = logging.getLogger(__name__)
Headers = Mapping[str, str]
NOT_FOUND_PAGE: Reply = (404, TEXT, {}, b"404 page not found\n")


class App:
    def __init__(
        self,
        api: ObjectAPI,
        token: str,
        user: str,
        server_address: str,
        loader: Callable[[Iterable[dict[str, Any]]], int],
    ) -> None:
        self.api = api
        self.registry = api.registry
        self.token = token
        self.user = user
        self.server_address = server_address
        self.loader = loader
        self.faults = Faults()
        self.forbidden: list[ForbidRule] = []
        self.requests: list[RequestRecord] = []
        self.requests_lock = threading.Lock()
        self.exec_handlers = podexec.ExecHandlers()
        self.aggregated_discovery = True  # False: /api and /apis as a server before v1.26 serves them
        self.stale_discovery: frozenset[str] = frozenset()  # group/versions aggregated discovery marks Stale

    def handle(self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], raw: bytes) -> Reply:
        reply = self._handle(method, path, query, headers, raw)
        with self.requests_lock:
            self.requests.append(RequestRecord(method, path, query, reply[0]))
        return reply

    def upgrade(
        self, method: str, path: str, query: list[tuple[str, str]], headers: Mapping[str, str]
    ) -> tuple[Reply | None, podexec.ExecCall | None]:
        """A WebSocket upgrade (only pods/exec has one here): the error reply, or the exec call to stream."""
        reply: Reply | None = None
        call = None
        auth = headers.get("Authorization") or ""
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.token}".encode()):
            reply = _error(ApiError(401, "Unauthorized"))
        else:
            try:
                call = podexec.prepare(self.api, self.exec_handlers, path, query, headers)
            except ApiError as exc:
                reply = _error(exc)
            except Exception as exc:  # as _handle: a bug here must still answer
                logger.exception("internal error upgrading %s %s", method, path)
                reply = _error(ApiError(500, f"Internal error occurred: {type(exc).__name__}", "InternalError"))
        with self.requests_lock:
            self.requests.append(RequestRecord(method, path, dict(query), reply[0] if reply else 101))
        return reply, call

    def _handle(self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], raw: bytes) -> Reply:
        auth = headers.get("Authorization") or ""
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.token}".encode()):
            return _error(ApiError(401, "Unauthorized"))
        injected, serve_first = self.faults.check(method, path)
        if injected is not None and not serve_first:
            return _error(injected)
        try:
            reply = self._dispatch(method, path, query, headers, raw)
        except ApiError as exc:
            reply = _error(exc)
        except Exception as exc:  # a bug here must still answer, as the real server's panic handler does
            logger.exception("internal error serving %s %s", method, path)
            reply = _error(ApiError(500, f"Internal error occurred: {type(exc).__name__}", "InternalError"))
        return _error(injected) if injected is not None else reply

    def _dispatch(self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], raw: bytes) -> Reply:
        route = routing.parse(path)
        if route.kind == "resource":
            return self._resource(route, method, path, query, headers, raw)
        if route.kind == "bulk":
            if method != "POST":
                raise method_not_allowed()
            return _json(200, orjson.dumps({"loaded": self.loader(_parse_body(headers, raw, "list"))}))
        if method != "GET":
            raise method_not_allowed()
        with self.api.store.lock:
            doc: Any = None
            if route.kind == "version":
                doc = version_doc()
            elif route.kind == "health":
                return 200, TEXT, {}, b"ok"
            elif (
                route.kind in ("core", "groups") and self.aggregated_discovery and _wants_aggregated_discovery(headers)
            ):
                core, stale = route.kind == "core", self.stale_discovery
                body = orjson.dumps(aggregated_discovery_doc(self.registry, core=core, stale=stale))
                return 200, AGGREGATED_TYPE, {}, body
            elif route.kind == "core":
                doc = core_versions_doc(self.server_address)
            elif route.kind == "groups":
                doc = group_list_doc(self.registry)
            elif route.kind == "group":
                doc = group_doc(self.registry, route.group)
            elif route.kind == "resources" and self.registry.has_group_version(route.group, route.version):
                doc = resource_list_doc(self.registry, route.group, route.version)
        return NOT_FOUND_PAGE if doc is None else _json(200, orjson.dumps(doc))

    def is_allowed(self, verb: str, group: str, plural: str, namespace: str | None, path: str = "") -> bool:
        if not path:
            base = f"/apis/{group}/v1" if group else "/api/v1"
            path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
        return not any(rule.matches(verb, group, plural, path) for rule in self.forbidden)

    def _resource(
        self, route: routing.Route, method: str, path: str, query: dict[str, str], headers: Headers, raw: bytes
    ) -> Reply:
        with self.api.store.lock:
            rtype = self.registry.lookup(route.group, route.version, route.plural)
            known_version = self.registry.has_group_version(route.group, route.version)
        if rtype is None:
            if not known_version:
                return NOT_FOUND_PAGE
            raise resource_not_found()
        if route.namespace is not None and not rtype.namespaced:
            raise resource_not_found()
        verb = self._verb(rtype, route, method, query)
        if not self.is_allowed(verb, rtype.group, rtype.plural, route.namespace, path):
            raise forbidden(rtype.group, rtype.plural, route.name, self.user, verb, route.namespace)
        if not rtype.storable:
            body = _parse_body(headers, raw, rtype.kind)
            return _json(201, reviews.review(rtype, route.version, body, self.user, self.token, self._authorizer))
        return self._serve(rtype, route, verb, method, query, headers, raw)

    def _serve(
        self,
        rtype: ResourceType,
        route: routing.Route,
        verb: str,
        method: str,
        query: dict[str, str],
        headers: Headers,
        raw: bytes,
    ) -> Reply:
        dry_run = _dry_run(query, verb)
        api, version, ns, name = self.api, route.version, route.namespace, route.name
        if route.subresource == "scale":
            content_type = _media_type(headers) if method != "GET" else ""
            if method == "PATCH" and content_type not in patch.PATCH_TYPES:
                raise _unsupported_patch()
            return _json(*api.scale(rtype, version, ns, name or "", method, content_type, raw, dry_run=dry_run))
        if verb == "list":
            return _json(*api.list(rtype, version, ns, query, metadata_only=_wants_partial_list(headers)))
        if verb == "get":
            return _json(*api.get(rtype, version, ns, name or ""))
        if verb == "create":
            return _json(*api.create(rtype, version, ns, _parse_body(headers, raw, rtype.kind), dry_run=dry_run))
        if verb == "update":
            body = _parse_body(headers, raw, rtype.kind)
            return _json(
                *api.replace(rtype, version, ns, name or "", body, subresource=route.subresource, dry_run=dry_run)
            )
        if verb == "patch":
            content_type = _media_type(headers)
            if content_type not in patch.PATCH_TYPES:
                raise _unsupported_patch()
            if content_type == patch.APPLY and not query.get("fieldManager"):
                raise ApiError(
                    422,
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                    "Invalid",
                )
            return _json(
                *api.patch(
                    rtype, version, ns, name or "", content_type, raw, subresource=route.subresource, dry_run=dry_run
                )
            )
        if verb == "delete":
            options = _parse_body(headers, raw, "DeleteOptions") if raw.strip() else {}
            return _json(*api.delete(rtype, version, ns, name or "", options, dry_run=dry_run))
        return _json(*api.delete_collection(rtype, version, ns, query, dry_run=dry_run))

    def _authorizer(self, verb: str, group: str, plural: str, namespace: str | None) -> bool:
        return self.is_allowed(verb, group, plural, namespace)

    def _verb(self, rtype: ResourceType, route: routing.Route, method: str, query: Mapping[str, str]) -> str:
        """The RBAC verb of the request; a method the resource does not serve answers 405."""
        sub = route.subresource
        if route.name and rtype.namespaced and route.namespace is None:
            raise resource_not_found()  # a namespaced object has no cluster-wide URL
        if sub and (
            sub not in ("status", "scale")
            or (sub == "status" and not rtype.status)
            or (sub == "scale" and not rtype.scale)
        ):
            raise resource_not_found()
        if method == "GET":
            if query.get("watch") in ("true", "1"):
                raise ApiError(405, "watch is not supported by the Lifeboat test server", details={})
            verb = "get" if route.name else "list"
        elif method == "DELETE":
            verb = "delete" if route.name else "deletecollection"
        elif method in _VERB_BY_METHOD:
            verb = _VERB_BY_METHOD[method]
        else:
            raise method_not_allowed()
        if sub:
            if verb not in ("get", "update", "patch"):
                raise method_not_allowed()
            return verb
        # Creating goes to the collection of one namespace; the rest, except lists, address one object.
        if verb == "create" and (route.name or (rtype.namespaced and route.namespace is None)):
            raise method_not_allowed()
        if verb in ("update", "patch") and not route.name:
            raise method_not_allowed()
        if verb == "deletecollection" and rtype.namespaced and route.namespace is None:
            raise method_not_allowed()
        if verb not in rtype.verbs:
            raise method_not_allowed()
        return verb


def _error(exc: ApiError) -> Reply:
    return exc.code, JSON, exc.headers, exc.body()


def _json(code: int, body: bytes) -> Reply:
    return code, JSON, {}, body


def _media_type(headers: Mapping[str, str], default: str = "") -> str:
    return (headers.get("Content-Type") or default).split(";")[0].strip().lower()


def _wants_partial_list(headers: Mapping[str, str]) -> bool:
    """Whether ``Accept`` asks for a list as object metadata only (``PartialObjectMetadataList``)."""
    return _transformation(headers, _PARTIAL_LISTS) is not None


def _wants_aggregated_discovery(headers: Mapping[str, str]) -> bool:
    """Whether ``Accept`` asks ``/api`` or ``/apis`` for every group's resources at once (``APIGroupDiscoveryList``)."""
    return _transformation(headers, _AGGREGATED_DISCOVERY) is not None


def _transformation(headers: Mapping[str, str], known: set[tuple[str, str, str]]) -> tuple[str, str, str] | None:
    """The (as, g, v) ``Accept`` asks for, as kube-apiserver reads it: the first media range it can serve wins,
    a plain JSON one (None) included. A range asking for a transformation this server does not serve here is
    skipped; with nothing left it answers 406."""
    accept = headers.get("Accept") or ""
    if "as=" not in accept:
        return None
    for media_range in accept.split(","):
        media, *params = (part.strip() for part in media_range.split(";"))
        if media.lower() not in ("application/json", "*/*", "application/*"):
            continue
        options = dict(p.partition("=")[::2] for p in params)
        options.pop("q", None)
        if not options.get("as"):
            return None
        wanted = (options.get("as", ""), options.get("g", ""), options.get("v", ""))
        if wanted in known:
            return wanted
    served = ", ".join(f"{JSON};as={as_};g={g};v={v}" for as_, g, v in sorted(known))
    raise ApiError(406, f"only the following media types are accepted: {JSON}, {served}")


_PARTIAL_LISTS = {("PartialObjectMetadataList", "meta.k8s.io", "v1")}
_AGGREGATED_DISCOVERY = {("APIGroupDiscoveryList", "apidiscovery.k8s.io", "v2")}
AGGREGATED_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def _unsupported_patch() -> ApiError:
    return ApiError(
        415,
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(patch.PATCH_TYPES),
    )


def _parse_body(headers: Mapping[str, str], raw: bytes, kind: str) -> Any:
    # Without a Content-Type the real server decodes with its first serializer, JSON (the Python client relies on it);
    # a PATCH, in contrast, must name its patch type.
    media = _media_type(headers, JSON)
    if media not in BODY_TYPES:
        raise ApiError(
            415,
            "the body of the request was in an unknown format - accepted media types include: application/json, "
            "application/yaml, application/vnd.kubernetes.protobuf",
        )
    try:
        if media == "application/yaml":
            import yaml

            return yaml.safe_load(raw)
        return orjson.loads(raw)
    except Exception as exc:  # any parser error means a malformed body
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


def _dry_run(query: Mapping[str, str], verb: str) -> bool:
    value = query.get("dryRun", "")
    if not value:
        return False
    if value != "All":
        names = {"create": "CreateOptions", "delete": "DeleteOptions", "patch": "PatchOptions"}
        options = names.get(verb, "UpdateOptions")
        raise ApiError(
            422,
            f'{options}.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["{value}"]: supported values: "All"',
            "Invalid",
        )
    return True
