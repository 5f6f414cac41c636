"""Create, read, update, patch and delete of stored objects, with the real server's checks, order and answers.

Every method takes the resolved type and version and returns `(status code, response body)`; errors are raised as
ApiError. All state changes happen under the store lock; response bodies are built from immutable stored bytes.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from typing import Any

import orjson

from sandbox.kubeapi import defaults, listing, patch, scale
from sandbox.kubeapi.catalog import ResourceType
from sandbox.kubeapi.errors import (
    STALE_CAUSE,
    ApiError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
    success_body,
)
from sandbox.kubeapi.hooks import Hooks
from sandbox.kubeapi.metadata import (
    body_of,
    carry_server_fields,
    client_meta,
    generated_name,
    now,
    spec_changed,
    stamp_create,
)
from sandbox.kubeapi.registry import Registry
from sandbox.kubeapi.store import Store, Stored, object_key
from sandbox.kubeapi.validation import validate_kind, validate_metadata

Obj = dict[str, Any]
Response = tuple[int, bytes]


def type_prefix(rtype: ResourceType, version: str) -> bytes:
    """`{"kind":..,"apiVersion":..,` to splice in front of a stored body (which starts with `{"metadata"`)."""
    return _prefix(rtype.kind, rtype.api_version(version))


@functools.lru_cache(maxsize=1024)
def _prefix(kind: str, api_version: str) -> bytes:
    return orjson.dumps({"kind": kind, "apiVersion": api_version})[:-1] + b","


def render(rtype: ResourceType, version: str, stored: Stored) -> bytes:
    return type_prefix(rtype, version) + stored.body[1:]


class ObjectAPI:
    def __init__(
        self, store: Store, registry: Registry, ca_pem: bytes, namespace_delete_delay: float, controllers: bool
    ) -> None:
        self.store = store
        self.registry = registry
        self.hooks = Hooks(store, registry, self._controller_create, ca_pem, controllers)
        self.namespace_delete_delay = namespace_delete_delay

    def _controller_create(self, rtype: ResourceType, namespace: str, body: Obj) -> Response:
        # Core controllers write through the same create as clients, minus namespace admission.
        return self.create(rtype, rtype.versions[0], namespace, body, internal=True)

    # -- create ------------------------------------------------------------------------------------------------

    def create(
        self,
        rtype: ResourceType,
        version: str,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        keep_status: bool = False,
        internal: bool = False,
        respond: bool = True,
    ) -> Response:
        """internal: a controller's own write (no namespace admission); respond=False skips the body (bulk load)."""
        obj = self._incoming(rtype, version, namespace, body)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        with self.store.lock:
            bucket = self.store.bucket(rtype)
            requested = str(meta.get("name") or meta.get("generateName") or "")
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._unused_name(bucket, namespace, str(meta["generateName"]))
            name = str(meta.get("name") or "")
            if rtype.namespaced and not internal:
                self.hooks.check_namespace(rtype, namespace or "", name)
                self.hooks.check_service_account(rtype, namespace or "", requested, obj)
            errors = validate_metadata(rtype, meta)
            if errors:
                raise invalid(rtype.group, rtype.kind, name, errors)
            stamp_create(rtype, meta, 0)
            self.hooks.mutate(rtype, obj, None)
            defaults.apply_defaults(rtype.group, rtype.kind, obj)
            self._set_initial_status(rtype, obj, keep_status)
            errors = validate_kind(rtype, obj)
            if errors:
                raise invalid(rtype.group, rtype.kind, name, errors)
            key = object_key(namespace if rtype.namespaced else None, name)
            if bucket.get(key) is not None:
                raise already_exists(rtype.group, rtype.plural, name)
            self.hooks.allocate(rtype, obj, None, dry_run)
            if dry_run:
                meta.pop("resourceVersion", None)
                return 201, type_prefix(rtype, version) + orjson.dumps(body_of(obj))[1:]
            rv = self.store.next_rv()
            meta["resourceVersion"] = str(rv)
            stored = Stored.of(body_of(obj), rv)
            bucket.put(key, stored)
            self.hooks.created(rtype, obj)
        return 201, render(rtype, version, stored) if respond else b""

    def _incoming(self, rtype: ResourceType, version: str, namespace: str | None, body: Any) -> Obj:
        """The client's object reduced to what a client may set, with the namespace checked against the URL."""
        if not isinstance(body, dict):
            raise bad_request(f"the object provided is unrecognized (must be of type {rtype.kind})")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version not in [rtype.api_version(v) for v in rtype.versions]:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rtype.api_version(version)})"
            )
        if kind and kind != rtype.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})")
        meta = client_meta(body.get("metadata"))
        if rtype.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        obj = {k: v for k, v in body.items() if k not in ("kind", "apiVersion", "metadata")}
        obj["metadata"] = meta
        return obj

    def _unused_name(self, bucket: Any, namespace: str | None, prefix: str) -> str:
        for _ in range(8):
            name = generated_name(prefix)
            if bucket.get(object_key(namespace, name)) is None:
                return name
        return generated_name(prefix)

    def _validate(self, rtype: ResourceType, obj: Obj) -> None:
        errors = validate_metadata(rtype, obj["metadata"])
        if not errors:
            errors = validate_kind(rtype, obj)
        if errors:
            raise invalid(rtype.group, rtype.kind, str(obj["metadata"].get("name") or ""), errors)

    def _set_initial_status(self, rtype: ResourceType, obj: Obj, keep: bool) -> None:
        # Create strategies of types with a status subresource reset status; seeding (load) keeps a given one.
        if not rtype.status or (keep and "status" in obj) or rtype.kind == "CustomResourceDefinition":
            return
        if rtype.custom:
            obj.pop("status", None)
        elif rtype.kind != "Node" or "status" not in obj:
            obj["status"] = defaults.initial_status(rtype.group, rtype.kind, obj)

    # -- read --------------------------------------------------------------------------------------------------

    def current(self, rtype: ResourceType, namespace: str | None, name: str) -> Stored:
        stored = self.store.bucket(rtype).get(object_key(namespace if rtype.namespaced else None, name))
        if stored is None:
            raise not_found(rtype.group, rtype.plural, name)
        return stored

    def get(self, rtype: ResourceType, version: str, namespace: str | None, name: str) -> Response:
        with self.store.lock:
            stored = self.current(rtype, namespace, name)
        return 200, render(rtype, version, stored)

    def list(
        self,
        rtype: ResourceType,
        version: str,
        namespace: str | None,
        query: Mapping[str, str],
        *,
        metadata_only: bool = False,
    ) -> Response:
        """A page of the collection; ``metadata_only``: as a ``PartialObjectMetadataList``."""
        parsed = listing.ListQuery.parse(rtype, namespace, query)
        with self.store.lock:
            page = listing.list_page(self.store, self.store.bucket(rtype), parsed)
        if metadata_only:
            return 200, listing.render_partial_list(page)
        prefix = type_prefix(rtype, version) if rtype.custom else None
        return 200, listing.render_list(rtype, version, page, prefix)

    # -- update ------------------------------------------------------------------------------------------------

    def replace(
        self,
        rtype: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Response:
        obj = self._incoming(rtype, version, namespace, body)
        _check_name(obj["metadata"].get("name"), name)
        with self.store.lock:
            bucket = self.store.bucket(rtype)
            stored = bucket.get(object_key(namespace if rtype.namespaced else None, name))
            if stored is None:
                if rtype.create_on_update and not subresource:
                    return self.create(rtype, version, namespace, body, dry_run=dry_run)
                raise not_found(rtype.group, rtype.plural, name)
            return self._update(rtype, version, stored, obj, subresource, dry_run)

    def _update(
        self, rtype: ResourceType, version: str, stored: Stored, obj: Obj, subresource: str, dry_run: bool
    ) -> Response:
        old = stored.load()
        name = old["metadata"]["name"]
        wanted_rv = obj["metadata"].get("resourceVersion")
        if wanted_rv and wanted_rv != str(stored.rv):
            raise conflict(rtype.group, rtype.plural, name, STALE_CAUSE)
        if subresource == "status":
            new = {**old, "status": obj.get("status")} if obj.get("status") is not None else dict(old)
            if obj.get("status") is None:
                new.pop("status", None)
        else:
            new = obj
            carry_server_fields(old["metadata"], new["metadata"])
            if rtype.status and rtype.kind != "CustomResourceDefinition":
                new.pop("status", None)
                if "status" in old:
                    new["status"] = old["status"]
            self.hooks.mutate(rtype, new, old)
            defaults.apply_defaults(rtype.group, rtype.kind, new)
            self._validate(rtype, new)
            self.hooks.allocate(rtype, new, old, dry_run)
            if rtype.generation and spec_changed(old, new):
                new["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        new_body = body_of(new)
        if new_body == body_of(old) or dry_run:
            # A no-op update writes nothing and keeps the resourceVersion, as on the real server.
            return 200, type_prefix(rtype, version) + orjson.dumps(new_body)[1:]
        return self._commit(rtype, version, new_body)

    def _commit(self, rtype: ResourceType, version: str, body: Obj) -> Response:
        meta = body["metadata"]
        key = object_key(meta.get("namespace") if rtype.namespaced else None, meta["name"])
        rv = self.store.next_rv()
        meta["resourceVersion"] = str(rv)
        stored = Stored.of(body, rv)
        namespace_type = rtype.kind == "Namespace" and not rtype.group  # its lifecycle goes by spec.finalizers
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not namespace_type:
            # The last finalizer is gone: the deletion that was waiting for it completes now.
            self.store.bucket(rtype).pop(key)
            self.hooks.deleted(rtype, body)
        else:
            self.store.bucket(rtype).put(key, stored)
            self.hooks.updated(rtype, body)
        return 200, render(rtype, version, stored)

    def patch(
        self,
        rtype: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Response:
        document = _parse_patch(content_type, raw)
        with self.store.lock:
            stored = self.store.bucket(rtype).get(object_key(namespace if rtype.namespaced else None, name))
            if stored is None:
                if content_type == patch.APPLY and not subresource:
                    applied = document.get("metadata") if isinstance(document, dict) else None
                    applied = applied if isinstance(applied, dict) else {}
                    _check_name(applied.get("name"), name)
                    applied.pop("resourceVersion", None)
                    return self.create(rtype, version, namespace, document, dry_run=dry_run)
                raise not_found(rtype.group, rtype.plural, name)
            current = {"kind": rtype.kind, "apiVersion": rtype.api_version(version), **stored.load()}
            if content_type == patch.JSON_PATCH:
                patched = patch.json_patch(current, document)
            elif content_type == patch.APPLY:
                patched = patch.apply_merge(current, document)
            else:
                if not isinstance(document, dict):
                    raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
                if content_type == patch.STRATEGIC:
                    document = patch.strip_directives(document)
                patched = patch.merge_patch(current, document)
            obj = self._incoming(rtype, version, namespace, patched)
            _check_name(obj["metadata"].get("name"), name)
            return self._update(rtype, version, stored, obj, subresource, dry_run)

    def scale(
        self,
        rtype: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        method: str,
        content_type: str,
        raw: bytes,
        *,
        dry_run: bool = False,
    ) -> Response:
        with self.store.lock:
            stored = self.current(rtype, namespace, name)
            obj = stored.load()
            if method == "GET":
                return 200, scale.render(obj)
            replicas, wanted_rv = scale.updated_replicas(obj, method, content_type, raw)
            if wanted_rv and wanted_rv != str(stored.rv):
                raise conflict(rtype.group, rtype.plural, name, STALE_CAUSE)
            obj.setdefault("spec", {})["replicas"] = replicas
            incoming = self._incoming(rtype, version, namespace, obj)
            _, body = self._update(rtype, version, stored, incoming, "", dry_run)
        return 200, scale.render(orjson.loads(body))

    # -- delete ------------------------------------------------------------------------------------------------

    def delete(
        self,
        rtype: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        options: Obj,
        *,
        dry_run: bool = False,
    ) -> Response:
        with self.store.lock:
            stored = self.current(rtype, namespace, name)
            obj = stored.load()
            _check_preconditions(rtype, obj, options)
            if dry_run:
                return 200, render(rtype, version, stored)
            if rtype.kind == "Namespace" and rtype.group == "":
                return self._delete_namespace(rtype, version, obj)
            if obj["metadata"].get("finalizers"):
                if obj["metadata"].get("deletionTimestamp"):
                    return 200, render(rtype, version, stored)
                obj["metadata"]["deletionTimestamp"] = now()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                return self._commit(rtype, version, body_of(obj))
            self.store.bucket(rtype).pop(object_key(namespace if rtype.namespaced else None, name))
            self.store.next_rv()
            self.hooks.deleted(rtype, obj)
        if rtype.returns_object:
            return 200, render(rtype, version, stored)
        details = {
            "name": name,
            **({"group": rtype.group} if rtype.group else {}),
            "kind": rtype.plural,
            "uid": obj["metadata"]["uid"],
        }
        return 200, success_body(details)

    def _delete_namespace(self, rtype: ResourceType, version: str, obj: Obj) -> Response:
        name = obj["metadata"]["name"]
        if self.store.namespaces.get(name) == "Terminating":
            raise conflict("", "namespaces", name, _NS_TERMINATING)
        obj["metadata"]["deletionTimestamp"] = now()
        obj["status"] = {"phase": "Terminating"}
        self.store.namespaces[name] = "Terminating"
        response = self._commit(rtype, version, body_of(obj))
        if self.namespace_delete_delay <= 0:
            self.hooks.purge_namespace(name)
        else:
            timer = threading.Timer(self.namespace_delete_delay, self._purge_later, args=(name,))
            timer.daemon = True
            timer.start()
        return response

    def _purge_later(self, namespace: str) -> None:
        with self.store.lock:
            if self.store.namespaces.get(namespace) == "Terminating":
                self.hooks.purge_namespace(namespace)

    def delete_collection(
        self, rtype: ResourceType, version: str, namespace: str | None, query: Mapping[str, str], *, dry_run: bool
    ) -> Response:
        parsed = listing.ListQuery.parse(rtype, namespace, {k: v for k, v in query.items() if k != "limit"})
        with self.store.lock:
            page = listing.list_page(self.store, self.store.bucket(rtype), parsed)
            for stored in page.items:
                meta = orjson.loads(stored.body)["metadata"]
                self.delete(rtype, version, meta.get("namespace"), meta["name"], {}, dry_run=dry_run)
        prefix = type_prefix(rtype, version) if rtype.custom else None
        return 200, listing.render_list(rtype, version, page, prefix)


_NS_TERMINATING = (
    "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will "
    "automatically be purged by the system."
)


def _check_preconditions(rtype: ResourceType, obj: Obj, options: Obj) -> None:
    pre = options.get("preconditions") or {}
    meta = obj["metadata"]
    for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        if pre.get(field) and pre[field] != meta.get(field):
            cause = f"Precondition failed: {label} in precondition: {pre[field]}, {label} in object meta: "
            cause += str(meta.get(field))
            raise conflict(rtype.group, rtype.plural, meta["name"], cause)


def _check_name(body_name: Any, url_name: str) -> None:
    if body_name != url_name:
        raise bad_request(f"the name of the object ({body_name or ''}) does not match the name on the URL ({url_name})")


def _parse_patch(content_type: str, raw: bytes) -> Any:
    try:
        if content_type == patch.APPLY:
            import yaml

            return yaml.safe_load(raw)
        return orjson.loads(raw)
    except Exception as exc:  # any parser error is the client's malformed body
        raise ApiError(400, f"error decoding patch: {exc}") from exc
