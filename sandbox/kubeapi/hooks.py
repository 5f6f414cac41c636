"""Per-kind behaviour around writes: what admission plugins, registry strategies and core controllers do.

Namespaces (lifecycle, the default ServiceAccount and kube-root-ca.crt ConfigMap the controllers add), a Pod's
ServiceAccount (admission), Service IP and node port allocation, the default StorageClass of PVCs, Job selectors,
Secret data checks, CRD registration and the snapshot CRDs' schema; listeners (simulated controllers) hear of
creates and deletes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from sandbox.kubeapi import crds, snapshot_schema
from sandbox.kubeapi.allocators import Allocators
from sandbox.kubeapi.catalog import ResourceType
from sandbox.kubeapi.errors import ApiError, FieldError, invalid, not_found
from sandbox.kubeapi.registry import Registry
from sandbox.kubeapi.store import Store, object_key

Obj = dict[str, Any]
# A controller's own create (type, namespace, body), passed in by the object API so this module does not import it.
ControllerCreate = Callable[[ResourceType, str, Obj], object]
# A simulated controller told of every stored create and delete (the snapshotter), called under the store lock.
Listener = Callable[[str, ResourceType, Obj], None]
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"


class Hooks:
    """Kind-specific steps the object API calls at fixed points of every write. Callers hold the store lock."""

    def __init__(
        self, store: Store, registry: Registry, create: ControllerCreate, ca_pem: bytes, controllers: bool
    ) -> None:
        self.controllers = controllers
        self.store = store
        self.registry = registry
        self._create = create
        self.alloc = Allocators()
        self.ca_pem = ca_pem
        self.listeners: list[Listener] = []
        # What a mutating admission webhook would do on create, per plural (a test control; none by default).
        self.webhooks: dict[str, Callable[[Obj], None]] = {}

    # -- admission: before anything is stored ------------------------------------------------------------------

    def check_namespace(self, rtype: ResourceType, namespace: str, name: str) -> None:
        phase = self.store.namespaces.get(namespace)
        if phase is None:
            raise not_found("", "namespaces", namespace)
        if phase == "Terminating":
            raise ApiError(
                403,
                f'{_gr(rtype)} "{name}" is forbidden: unable to create new content in namespace {namespace} '
                "because it is being terminated",
                details={
                    "name": name,
                    **({"group": rtype.group} if rtype.group else {}),
                    "kind": rtype.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "field": "metadata.namespace",
                            "message": f"namespace {namespace} is being terminated",
                        }
                    ],
                },
            )

    def check_service_account(self, rtype: ResourceType, namespace: str, name: str, obj: Obj) -> None:
        """The ServiceAccount admission plugin on a Pod create: the pod's account (``default`` when it names none)
        must exist in its namespace. Nothing creates ``default`` unless the serviceaccount controller runs, so on a
        server without controllers a pod naming no account is refused, as kube-apiserver alone refuses it.

        ``name`` is the requested name (``generateName`` when the server is to generate it: admission runs first)."""
        if (rtype.group, rtype.kind) != ("", "Pod"):
            return
        if ((obj.get("metadata") or {}).get("annotations") or {}).get(MIRROR_POD_ANNOTATION) is not None:
            return  # a kubelet's mirror of a static pod has no service account
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = {}
        account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        accounts = self.registry.get("", "serviceaccounts")
        assert accounts is not None
        if self.store.bucket(accounts).get(object_key(namespace, account)) is not None:
            return
        raise ApiError(
            403,
            f'pods "{name or "Unknown"}" is forbidden: error looking up service account {namespace}/{account}: '
            f'serviceaccount "{account}" not found',
            details={"name": name or "Unknown", "kind": "pods"},
        )

    def mutate(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> None:
        """Mutating admission and strategy steps that need no allocation."""
        webhook = self.webhooks.get(rtype.plural) if old is None else None
        if webhook is not None:
            webhook(obj)
        kind = (rtype.group, rtype.kind)
        if kind == ("", "Secret"):
            _check_base64(obj)
        elif kind == ("", "PersistentVolumeClaim") and old is None:
            self._default_storage_class(obj)
        elif kind == ("batch", "Job"):
            _job_selector(obj, old)
        elif kind == ("apiextensions.k8s.io", "CustomResourceDefinition"):
            errors = crds.validate(obj)
            if errors:
                raise invalid(crds.GROUP, "CustomResourceDefinition", obj["metadata"].get("name", ""), errors)
            crds.apply_defaults(obj)
            obj["status"] = crds.established_status(obj, (old or {}).get("status"))
        elif rtype.group == snapshot_schema.GROUP:
            errors = snapshot_schema.validate(rtype.kind, obj, old)
            if errors:
                raise invalid(rtype.group, rtype.kind, obj["metadata"].get("name", ""), errors)

    def allocate(self, rtype: ResourceType, obj: Obj, old: Obj | None, dry_run: bool) -> None:
        if (rtype.group, rtype.kind) == ("", "Service"):
            errors = self.alloc.assign(obj["spec"], (old or {}).get("spec"), reserve=not dry_run)
            if errors:
                raise invalid("", "Service", obj["metadata"]["name"], errors)

    def _default_storage_class(self, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        if "storageClassName" in spec:
            return
        classes = self.registry.get("storage.k8s.io", "storageclasses")
        bucket = self.store.buckets.get(classes.key) if classes else None
        for key, stored in sorted((bucket.objects if bucket else {}).items()):
            annotations = stored.load()["metadata"].get("annotations") or {}
            if annotations.get(DEFAULT_CLASS_ANNOTATION) == "true":
                spec["storageClassName"] = key
                return

    # -- after a write -----------------------------------------------------------------------------------------

    def created(self, rtype: ResourceType, obj: Obj) -> None:
        kind = (rtype.group, rtype.kind)
        if kind == ("", "Namespace"):
            name = obj["metadata"]["name"]
            self.store.namespaces[name] = "Active"
            if self.controllers:
                self._namespace_controllers(name)
        elif kind == ("apiextensions.k8s.io", "CustomResourceDefinition"):
            self.registry.put(crds.resource_type(obj))
        for listener in self.listeners:
            listener("created", rtype, obj)

    def updated(self, rtype: ResourceType, obj: Obj) -> None:
        if (rtype.group, rtype.kind) == ("apiextensions.k8s.io", "CustomResourceDefinition"):
            self.registry.put(crds.resource_type(obj))

    def deleted(self, rtype: ResourceType, obj: Obj) -> None:
        kind = (rtype.group, rtype.kind)
        if kind == ("", "Service"):
            self.alloc.release(obj.get("spec") or {})
        elif kind == ("apiextensions.k8s.io", "CustomResourceDefinition"):
            key = (obj["spec"]["group"], obj["spec"]["names"]["plural"])
            self.store.buckets.pop(key, None)  # the custom resources go with their definition
            self.registry.remove(key)
        elif kind == ("", "Namespace"):
            self.store.namespaces.pop(obj["metadata"]["name"], None)
        for listener in self.listeners:
            listener("deleted", rtype, obj)

    def _namespace_controllers(self, namespace: str) -> None:
        """What the service-account and root-CA publisher controllers add to every new namespace."""
        sa = self.registry.get("", "serviceaccounts")
        cm = self.registry.get("", "configmaps")
        assert sa is not None and cm is not None
        if self.store.bucket(sa).get(object_key(namespace, "default")) is None:
            self._create(sa, namespace, {"metadata": {"name": "default"}})
        if self.store.bucket(cm).get(object_key(namespace, "kube-root-ca.crt")) is None:
            body = {
                "metadata": {
                    "name": "kube-root-ca.crt",
                    "annotations": {"kubernetes.io/description": _ROOT_CA_DESCRIPTION},
                },
                "data": {"ca.crt": self.ca_pem.decode()},
            }
            self._create(cm, namespace, body)

    # -- namespace deletion ------------------------------------------------------------------------------------

    def purge_namespace(self, namespace: str) -> None:
        """Remove a namespace and everything in it, as the namespace controller does (finalizers not awaited)."""
        prefix = f"{namespace}/"
        for rtype in self.registry.types():
            bucket = self.store.buckets.get(rtype.key)
            if not rtype.namespaced or bucket is None:
                continue
            keys, lo, hi = bucket.key_range(prefix)
            for key in list(keys[lo:hi]):
                stored = bucket.pop(key)
                if stored is not None and rtype.kind == "Service":
                    self.alloc.release(stored.load().get("spec") or {})
                elif stored is not None and rtype.custom and self.listeners:
                    # Custom resources only: the simulated controllers watch snapshot objects, and loading every
                    # object of a large namespace to tell nobody would slow its deletion down.
                    for listener in self.listeners:
                        listener("deleted", rtype, stored.load())
        ns_type = self.registry.get("", "namespaces")
        assert ns_type is not None
        if self.store.bucket(ns_type).pop(namespace) is not None:
            self.store.next_rv()
        self.store.namespaces.pop(namespace, None)


_ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the "
    "internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes "
    "clusters."
)


def _gr(rtype: ResourceType) -> str:
    return f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural


def _check_base64(obj: Obj) -> None:
    for key, value in (obj.get("data") or {}).items():
        try:
            if not isinstance(value, str):
                raise ValueError("not a string")
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(
                400, f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data in data[{key}]'
            ) from exc


def _job_selector(obj: Obj, old: Obj | None) -> None:
    """Jobs get a selector on the uid the server generated, unless spec.manualSelector says otherwise."""
    spec = obj.get("spec") or {}
    if spec.get("manualSelector") or old is not None:
        return
    if spec.get("selector"):
        raise invalid(
            "batch",
            "Job",
            obj["metadata"].get("name", ""),
            [FieldError("spec.selector", "Invalid", None, "`selector` will be auto-generated")],
        )
    uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec.setdefault("template", {})
    meta = template.setdefault("metadata", {})
    meta["labels"] = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
        **(meta.get("labels") or {}),
    }
