"""The local sandbox: a moto server (emulated AWS over real HTTP) and the Kubernetes API test server."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGION = "us-east-1"
REPLICA_REGION = "us-west-2"
BUCKET = "lifeboat-sandbox-primary"
REPLICA_BUCKET = "lifeboat-sandbox-replica"
TABLE = "lifeboat-sandbox"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_SESSION_TOKEN": "sandbox",
    "AWS_DEFAULT_REGION": REGION,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sandbox:
    aws_endpoint: str
    kube: Any  # sandbox.kubeapi.KubeAPIServer
    kubeconfig_path: Path

    def settings(self) -> Any:
        from chalicelib.settings import Settings

        return Settings(
            table=TABLE,
            bucket=BUCKET,
            region=REGION,
            endpoint_url=self.aws_endpoint,
            replica_bucket=REPLICA_BUCKET,
            replica_region=REPLICA_REGION,
        )

    def env(self) -> dict[str, str]:
        """Environment that points the CLI and the handlers at this sandbox."""
        return {
            **FAKE_CREDENTIALS,
            "LIFEBOAT_TABLE": TABLE,
            "LIFEBOAT_BUCKET": BUCKET,
            "LIFEBOAT_REGION": REGION,
            "LIFEBOAT_AWS_ENDPOINT_URL": self.aws_endpoint,
            "KUBECONFIG": str(self.kubeconfig_path),
        }


def provision_aws(endpoint: str) -> None:
    """Create the sandbox's buckets and table in the emulated account (idempotent)."""
    import boto3

    from chalicelib.catalog.schema import create_table

    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if BUCKET not in existing:
        s3.create_bucket(Bucket=BUCKET)
    if REPLICA_BUCKET not in existing:
        boto3.client("s3", region_name=REPLICA_REGION, endpoint_url=endpoint).create_bucket(
            Bucket=REPLICA_BUCKET, CreateBucketConfiguration={"LocationConstraint": REPLICA_REGION}
        )
    ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
    if TABLE not in ddb.list_tables().get("TableNames", []):
        create_table(ddb, TABLE)


@contextmanager
def running_sandbox(workdir: Path) -> Iterator[Sandbox]:
    """Start moto and the Kubernetes API test server, provision AWS; stop both on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    from sandbox.kubeapi import KubeAPIServer

    for key, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log would drown the demo's output
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    kube = KubeAPIServer(snapshotter=True)  # the sample application's claims can be snapshotted
    kube.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        # moto keeps its accounts in the process: a sandbox started after another one begins empty all the same.
        import urllib3

        urllib3.request("POST", f"{endpoint}/moto-api/reset", timeout=10)
        provision_aws(endpoint)
        workdir.mkdir(parents=True, exist_ok=True)
        kubeconfig = workdir / "kubeconfig"
        kube.write_kubeconfig(kubeconfig)
        yield Sandbox(aws_endpoint=endpoint, kube=kube, kubeconfig_path=kubeconfig)
    finally:
        kube.stop()
        moto.stop()
