"""Registering clusters: where their credentials are, checked by authenticating and discovering the API first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.catalog.clusters import ClusterRecord
from chalicelib.catalog.errors import RecordNotFound
from chalicelib.core.etcd import MANAGED_AUTH_TYPES, MANAGED_CONTROL_PLANE, EtcdTarget
from chalicelib.core.jobs import ClusterRef
from chalicelib.core.policies import CLUSTER_NAME
from chalicelib.scheduling.errors import ClusterCheckFailed, InvalidClusterAuth, SchedulingError

# What a registration may store: where the credentials are, never the credentials (an inline kubeconfig holds a
# token or key, so it is for one-off CLI backups only). Each kind lists its required fields.
REGISTRABLE: dict[str, tuple[str, ...]] = {
    "eks": ("cluster_name", "region"),
    "kubeconfig_secret": ("secret_id",),
    "token_secret": ("secret_id",),
}
_OPTIONAL = {"eks": (), "kubeconfig_secret": ("context",), "token_secret": ()}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ClusterCheck:
    ok: bool
    kubernetes_version: str | None = None
    resource_types: int = 0
    discovery_errors: list[tuple[str, str]] = field(default_factory=list)  # groups that failed to answer
    error: str | None = None  # the exact failure: which credential, which status, which message


def cluster_auth(
    *,
    eks_cluster: str | None = None,
    region: str | None = None,
    secret_id: str | None = None,
    context: str | None = None,
    token: bool = False,
) -> dict[str, Any]:
    """The auth block for the CLI's options: ``--eks-cluster``/``--region``, or ``--secret-id`` [``--context``]
    holding a kubeconfig (or, with ``--token``, JSON ``{"server", "token", "ca"}``)."""
    if bool(eks_cluster) == bool(secret_id):
        raise InvalidClusterAuth("give either an EKS cluster name (with its region) or a Secrets Manager secret id")
    if eks_cluster:
        return check_auth({"type": "eks", "cluster_name": eks_cluster, "region": region})
    if token:
        return check_auth({"type": "token_secret", "secret_id": secret_id})
    auth: dict[str, Any] = {"type": "kubeconfig_secret", "secret_id": secret_id}
    if context:
        auth["context"] = context
    return check_auth(auth)


def check_auth(auth: Any) -> dict[str, Any]:
    """A registrable auth block, or InvalidClusterAuth saying what is missing or not allowed."""
    if not isinstance(auth, dict) or auth.get("type") not in REGISTRABLE:
        kind = auth.get("type") if isinstance(auth, dict) else None
        hint = " (an inline kubeconfig holds credentials; store it in Secrets Manager)" if kind == "kubeconfig" else ""
        raise InvalidClusterAuth(f"auth type must be one of {', '.join(sorted(REGISTRABLE))}, not {kind!r}{hint}")
    kind = auth["type"]
    missing = [name for name in REGISTRABLE[kind] if not isinstance(auth.get(name), str) or not auth[name]]
    if missing:
        raise InvalidClusterAuth(f"{kind} auth needs {', '.join(missing)}")
    allowed = {"type", *REGISTRABLE[kind], *_OPTIONAL[kind]}
    extra = sorted(set(auth) - allowed)
    if extra:
        raise InvalidClusterAuth(f"{kind} auth does not take {', '.join(extra)}")
    return {k: v for k, v in auth.items() if v is not None}


class ClusterService:
    def __init__(
        self,
        clusters: Any,
        connect: Callable[[ClusterRef], Any],
        *,
        clock: Callable[[], datetime] = _utcnow,
        etcd_status: Callable[[EtcdTarget], Any] | None = None,
    ) -> None:
        self._clusters = clusters
        self._connect = connect
        self._clock = clock
        self._etcd_status = etcd_status  # a Maintenance.Status call (``etcd.MemberStatus``) on the target

    def check(self, name: str, auth: dict[str, Any]) -> ClusterCheck:
        """Authenticate and discover the API: the Kubernetes version, or the exact error."""
        client = None
        try:
            client = self._connect(ClusterRef(name, auth))
            version = client.version()
            resources = client.discover()
        except Exception as exc:  # noqa: BLE001 -- the point is to report whatever failed, verbatim
            cause = f" (caused by {type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
            return ClusterCheck(ok=False, error=f"{type(exc).__name__}: {exc}{cause}")
        finally:
            if client is not None and hasattr(client, "close"):
                client.close()
        errors = list(getattr(client, "discovery_errors", []) or [])
        return ClusterCheck(
            ok=True,
            kubernetes_version=str(version.get("gitVersion") or "unknown"),
            resource_types=len(resources),
            discovery_errors=[(str(g), str(e)) for g, e in errors],
        )

    def add(
        self, name: str, auth: dict[str, Any], *, verify: bool = True, etcd: EtcdTarget | None = None
    ) -> tuple[ClusterRecord, ClusterCheck]:
        """Register (or re-register) a cluster; with ``verify``, only if Lifeboat can reach it (ClusterCheckFailed).

        ``etcd`` (self-managed clusters) is checked by a status call; an EKS cluster records that its etcd is not
        accessible, and refuses an etcd target."""
        if not CLUSTER_NAME.fullmatch(name):
            raise SchedulingError(f"cluster name {name!r} may hold letters, digits and ._:@+=- only")
        auth = check_auth(auth)
        etcd_record = self._etcd_registration(name, auth, etcd, verify=verify)
        result = self.check(name, auth) if verify else ClusterCheck(ok=True)
        if not result.ok:
            raise ClusterCheckFailed(f"cluster {name!r} was not registered: {result.error}")
        details = {"resource_types": result.resource_types, "discovery_errors": len(result.discovery_errors)}
        record = self._clusters.register(
            name,
            auth,
            kubernetes_version=result.kubernetes_version,
            now=self._clock(),
            details=details,
            etcd=etcd_record,
        )
        return record, result

    def _etcd_registration(
        self, name: str, auth: dict[str, Any], etcd: EtcdTarget | None, *, verify: bool
    ) -> dict[str, Any] | None:
        if auth["type"] in MANAGED_AUTH_TYPES:
            if etcd is not None:
                raise SchedulingError(f"cluster {name!r}: {MANAGED_CONTROL_PLANE} (EKS runs it); drop the etcd options")
            return {"unavailable": MANAGED_CONTROL_PLANE}
        if etcd is None:
            return None
        record: dict[str, Any] = etcd.to_dict()
        if verify and self._etcd_status is not None:
            try:
                status = self._etcd_status(etcd)
            except Exception as exc:  # report whatever failed (TLS, secret, refused), verbatim
                failure = f"{type(exc).__name__}: {exc}"
                raise ClusterCheckFailed(f"cluster {name!r} was not registered: etcd: {failure}") from exc
            record.update(version=status.version, member=status.member_id)
        return record

    def list(self) -> list[ClusterRecord]:
        return list(self._clusters.list())

    def remove(self, name: str) -> None:
        try:
            self._clusters.unregister(name)
        except RecordNotFound as exc:
            raise SchedulingError(f"cluster {name!r} is not registered") from exc
