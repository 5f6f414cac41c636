"""Errors of the etcd adapter: gRPC failures translated, and snapshot streams that cannot be trusted."""

from __future__ import annotations


class EtcdError(Exception):
    """Base class for errors of the etcd adapter."""


class EtcdUnavailable(EtcdError):
    """No endpoint answered, or the call failed in transport (TLS handshake, refused connection, deadline)."""


class EtcdRefused(EtcdError):
    """etcd answered and refused the call (permission, unauthenticated, bad request)."""


class SnapshotIncomplete(EtcdError):
    """The snapshot stream ended before its data and its trailing SHA-256 had arrived."""


class SnapshotCorrupt(EtcdError):
    """The snapshot's bytes do not match the SHA-256 etcd sent after them, or the stream broke its own framing."""


class WireError(EtcdError):
    """A message from etcd could not be decoded."""


class EtcdCredentialsError(EtcdError):
    """The secret with etcd's client certificate cannot be read or does not hold ``{ca, cert, key}``."""


class EtcdToolError(EtcdError):
    """An etcd binary (etcdutl, etcd) is missing, failed or did not come up."""
