"""The built-in resource types: what /api and /apis advertise, with the verbs and subresources of a v1.31 cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NO_COLLECTION_DELETE = ("create", "delete", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)
SUB_VERBS = ("get", "patch", "update")

# Name rules of the real validators: most names are DNS subdomains, some are labels, RBAC names are path segments.
SUBDOMAIN, LABEL, DNS1035, PATH_SEGMENT = "subdomain", "label", "dns1035", "path"


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One resource (group + plural), served at one or more versions from the same storage."""

    group: str
    versions: tuple[str, ...]  # served versions, the preferred first
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False  # has a status subresource
    scale: bool = False  # has a scale subresource
    extra_subresources: tuple[tuple[str, tuple[str, ...]], ...] = ()  # advertised only (e.g. pods/log)
    generation: bool = False  # metadata.generation is maintained
    returns_object: bool = False  # DELETE answers with the object rather than a Status
    create_on_update: bool = False  # PUT of a missing object creates it
    name_rule: str = SUBDOMAIN
    custom: bool = False  # served like a custom resource (list items carry kind/apiVersion)
    spec_fields: tuple[str, ...] = ("spec",)  # top-level fields whose change bumps generation
    field_selectors: tuple[str, ...] = field(default=())

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def storable(self) -> bool:
        return "get" in self.verbs


def _t(group: str, versions: str, plural: str, kind: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    kw.setdefault("singular", kind.lower())
    return ResourceType(group, tuple(versions.split(",")), plural, kind=kind, namespaced=namespaced, **kw)


_POD_SUBS = (
    ("pods/attach", ("create", "get")),
    ("pods/binding", ("create",)),
    ("pods/ephemeralcontainers", SUB_VERBS),
    ("pods/eviction", ("create",)),
    ("pods/exec", ("create", "get")),
    ("pods/log", ("get",)),
    ("pods/portforward", ("create", "get")),
    ("pods/proxy", ("create", "delete", "get", "patch", "update")),
)
_WORKLOAD: dict[str, Any] = {"status": True, "generation": True, "categories": ("all",)}
_RBAC: dict[str, Any] = {"create_on_update": True, "name_rule": PATH_SEGMENT}
_SNAPSHOT: dict[str, Any] = {"custom": True, "generation": True}

# fmt: off
BUILTIN_TYPES: tuple[ResourceType, ...] = (
    # core/v1
    _t("", "v1", "bindings", "Binding", verbs=CREATE_ONLY),
    _t("", "v1", "componentstatuses", "ComponentStatus", False, verbs=("get", "list"), short_names=("cs",)),
    _t("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _t("", "v1", "endpoints", "Endpoints", singular="endpoints", short_names=("ep",), create_on_update=True),
    _t("", "v1", "events", "Event", short_names=("ev",), create_on_update=True),
    _t("", "v1", "limitranges", "LimitRange", short_names=("limits",), create_on_update=True),
    _t("", "v1", "namespaces", "Namespace", False, verbs=NO_COLLECTION_DELETE, short_names=("ns",), status=True,
       returns_object=True, name_rule=LABEL,
       extra_subresources=(("namespaces/finalize", ("update",)),), field_selectors=("status.phase",)),
    _t("", "v1", "nodes", "Node", False, short_names=("no",), status=True,
       extra_subresources=(("nodes/proxy", ("create", "delete", "get", "patch", "update")),)),
    _t("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",), status=True),
    _t("", "v1", "persistentvolumes", "PersistentVolume", False, short_names=("pv",), status=True),
    _t("", "v1", "pods", "Pod", short_names=("po",), categories=("all",), status=True, returns_object=True,
       extra_subresources=_POD_SUBS,
       field_selectors=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                        "status.phase", "status.podIP", "status.nominatedNodeName")),
    _t("", "v1", "podtemplates", "PodTemplate"),
    _t("", "v1", "replicationcontrollers", "ReplicationController", short_names=("rc",), categories=("all",),
       status=True, scale=True, generation=True),
    _t("", "v1", "resourcequotas", "ResourceQuota", short_names=("quota",), status=True),
    _t("", "v1", "secrets", "Secret", field_selectors=("type",)),
    _t("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",),
       extra_subresources=(("serviceaccounts/token", ("create",)),)),
    _t("", "v1", "services", "Service", short_names=("svc",), categories=("all",), status=True,
       returns_object=True, name_rule=DNS1035,
       extra_subresources=(("services/proxy", ("create", "delete", "get", "patch", "update")),)),
    # apps/v1
    _t("apps", "v1", "controllerrevisions", "ControllerRevision"),
    _t("apps", "v1", "daemonsets", "DaemonSet", short_names=("ds",), **_WORKLOAD),
    _t("apps", "v1", "deployments", "Deployment", short_names=("deploy",), scale=True, **_WORKLOAD),
    _t("apps", "v1", "replicasets", "ReplicaSet", short_names=("rs",), scale=True, **_WORKLOAD),
    _t("apps", "v1", "statefulsets", "StatefulSet", short_names=("sts",), scale=True, **_WORKLOAD),
    # batch/v1
    _t("batch", "v1", "cronjobs", "CronJob", short_names=("cj",), **_WORKLOAD),
    _t("batch", "v1", "jobs", "Job", **_WORKLOAD),
    # autoscaling: v2 is preferred, v1 is still served from the same storage
    _t("autoscaling", "v2,v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", short_names=("hpa",),
       categories=("all",), status=True, generation=True),
    # networking.k8s.io/v1
    _t("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    _t("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",), status=True, generation=True),
    _t("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",), generation=True),
    # rbac.authorization.k8s.io/v1
    _t("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, **_RBAC),
    _t("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, **_RBAC),
    _t("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", **_RBAC),
    _t("rbac.authorization.k8s.io", "v1", "roles", "Role", **_RBAC),
    # policy/v1
    _t("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short_names=("pdb",), status=True,
       generation=True),
    # storage.k8s.io/v1
    _t("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False),
    _t("storage.k8s.io", "v1", "csinodes", "CSINode", False),
    _t("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, short_names=("sc",)),
    _t("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", False, status=True),
    # snapshot.storage.k8s.io/v1: CRDs on a real cluster (external-snapshotter), built in here
    _t("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", "VolumeSnapshotClass", False,
       short_names=("vsclass", "vsclasses"), **_SNAPSHOT),
    _t("snapshot.storage.k8s.io", "v1", "volumesnapshotcontents", "VolumeSnapshotContent", False,
       short_names=("vsc", "vscs"), status=True, **_SNAPSHOT),
    _t("snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot", short_names=("vs",), status=True,
       **_SNAPSHOT),
    # discovery, coordination, events, scheduling
    _t("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", create_on_update=True),
    _t("coordination.k8s.io", "v1", "leases", "Lease", create_on_update=True),
    _t("events.k8s.io", "v1", "events", "Event", short_names=("ev",), create_on_update=True),
    _t("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, short_names=("pc",)),
    # apiextensions.k8s.io/v1
    _t("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
       short_names=("crd", "crds"), status=True, generation=True, returns_object=True),
    # review APIs: create only, never stored or listed
    _t("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False, verbs=CREATE_ONLY),
    _t("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=CREATE_ONLY),
    _t("authorization.k8s.io", "v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", verbs=CREATE_ONLY),
    _t("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
       verbs=CREATE_ONLY),
    _t("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False, verbs=CREATE_ONLY),
    _t("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, verbs=CREATE_ONLY),
)
# fmt: on

# The order /apis lists the built-in groups in (kube-apiserver's group priority order).
# fmt: off
GROUP_ORDER = (
    "apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
    "autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io", "policy", "rbac.authorization.k8s.io",
    "storage.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io", "scheduling.k8s.io",
    "coordination.k8s.io", "node.k8s.io", "discovery.k8s.io", "flowcontrol.apiserver.k8s.io",
)
# fmt: on
