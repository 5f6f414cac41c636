"""An in-memory Kubernetes API server for tests, the local sandbox and benchmarks.

It speaks the kube-apiserver REST API over HTTPS on 127.0.0.1 for everything Lifeboat uses: discovery (per group,
and aggregated as `APIGroupDiscoveryList` v2), CRUD with the real status codes and `Status` bodies, list paging with
`limit`/`continue` (etcd's token format, 410 Expired after a simulated compaction), lists as object metadata only
(`Accept: ...;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`, 406 for a transformation it does not know), label
and field selectors, resourceVersion conflicts, status/scale subresources, server-side defaults, namespace
lifecycle, a Pod's ServiceAccount admission (refused when the account is missing) and CustomResourceDefinitions. The
same integration tests run against a real cluster, so where behaviour is implemented it follows the real server.

Why not kmock (installed, and a fine mock for operators): it keeps objects as plain dicts and serves lists without
`limit`/`continue`, without a real resourceVersion and without selectors or kube-apiserver's Status reasons and
messages; those are exactly what a backup tool's paged listing, retries and conflict handling must be tested
against. It also runs on aiohttp's event loop, while this server must be usable from synchronous tests, a separate
process and benchmarks alike. The standard library's threaded HTTP server with orjson does the job in a few
hundred lines per concern.

Not implemented (documented gaps): watch, protobuf, `as=Table` and a single object as metadata, version conversion
(an object reads the same at every served version, only apiVersion changes), OpenAPI schemas and pruning of custom
resources, garbage collection through ownerReferences, controllers other than namespace lifecycle (no ReplicaSets or
Pods appear for a Deployment; the serviceaccount controller's `default` account only with
`namespace_controllers=True`), the token volume and image pull secrets ServiceAccount admission adds to a Pod, and
strategic merge patch list merging (served as a JSON merge patch).
"""

from __future__ import annotations

from sandbox.kubeapi.faults import Faults, RequestRecord
from sandbox.kubeapi.server import KubeAPIServer

__all__ = ["Faults", "KubeAPIServer", "RequestRecord"]
