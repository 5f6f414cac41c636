"""The etcd adapter: the only code speaking to etcd (v3 gRPC with TLS client certificates)."""

from __future__ import annotations

from chalicelib.etcd.client import EtcdClient, EtcdTLS, parse_endpoints
from chalicelib.etcd.credentials import tls_from_secret
from chalicelib.etcd.errors import EtcdCredentialsError, EtcdError, EtcdUnavailable, SnapshotCorrupt, SnapshotIncomplete
from chalicelib.etcd.wire import KeyCount, MemberStatus, SnapshotChunk

__all__ = [
    "EtcdClient",
    "EtcdCredentialsError",
    "EtcdError",
    "EtcdTLS",
    "EtcdUnavailable",
    "KeyCount",
    "MemberStatus",
    "SnapshotChunk",
    "SnapshotCorrupt",
    "SnapshotIncomplete",
    "parse_endpoints",
    "tls_from_secret",
]
