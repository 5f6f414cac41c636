"""Verification tests' shared steps: a policy with a verify block, a Completed backup of it, and the worker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from chalicelib.catalog.verifications import VerificationCatalog
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.policies import Policy
from chalicelib.repository import RepositoryReader
from chalicelib.verification.worker import VerificationWorker


def apply_policy(
    services: Any, namespaces: list[str], verify: dict[str, Any], *, cluster: str = "test-cluster"
) -> Policy:
    """A policy of ``cluster`` backing up ``namespaces``, with ``verify`` as its verify block, in the catalog."""
    policy = Policy.from_dict(
        {
            "name": f"shop-{uuid.uuid4().hex[:6]}",
            "cluster": cluster,
            "schedule": "0 2 * * *",
            "scope": {"include_namespaces": namespaces},
            "verify": verify,
        }
    )
    services.policy_catalog().create(policy, next_run_at=None, now=datetime.now(UTC))
    return policy


def back_up(services: Any, kubeconfig_path: Any, policy: Policy | None, *, scope: Any = None) -> Any:
    """A Completed one-shot backup of the policy's scope (or ``scope``) on the test cluster: its record."""
    auth = {"type": "kubeconfig", "kubeconfig": kubeconfig_path.read_text()}
    cluster = policy.cluster if policy is not None else "test-cluster"
    job = BackupJob(
        job_id=f"t-{uuid.uuid4()}",
        cluster=ClusterRef(cluster, auth),
        scope=scope if scope is not None else policy.scope,  # type: ignore[union-attr]
        policy=policy.name if policy is not None else None,
    )
    record = services.backup_service().run(job).record
    assert record.state == "Completed", record.failure or record.errors
    return record


def worker(services: Any, kube_client: Any, **options: Any) -> VerificationWorker:
    """The verification worker on the test catalog and repository, restoring into ``kube_client``'s cluster."""
    return VerificationWorker(
        verifications=VerificationCatalog(services.client("dynamodb"), services.settings.table),
        backups=services.catalog(),
        policies=services.policy_catalog(),
        connect=lambda name: kube_client,
        reader=lambda: RepositoryReader(services.repository()),
        **options,
    )
