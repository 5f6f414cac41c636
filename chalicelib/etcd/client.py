"""A small etcd v3 client over grpcio: member status, a count of every key, and the Maintenance snapshot stream."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chalicelib.etcd.errors import EtcdError, EtcdRefused, EtcdUnavailable, SnapshotIncomplete
from chalicelib.etcd.wire import (
    RANGE_METHOD,
    SNAPSHOT_METHOD,
    STATUS_METHOD,
    KeyCount,
    MemberStatus,
    SnapshotChunk,
    decode_count,
    decode_snapshot_chunk,
    decode_status,
    encode_count_all,
    encode_empty,
)

# etcd sends snapshot chunks of 32 KiB; a generous limit leaves room for servers configured otherwise.
_MAX_MESSAGE = 64 << 20
# gRPC status codes that mean "could not reach or finish in time", as opposed to "etcd said no".
_TRANSPORT_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "UNKNOWN", "INTERNAL"})


@dataclass(frozen=True)
class EtcdTLS:
    """PEM bytes of the client certificate, its key and the CA that signed etcd's serving certificate."""

    ca: bytes
    cert: bytes
    key: bytes
    server_name: str | None = None  # when the certificate's name differs from the endpoint's host

    def __repr__(self) -> str:
        return f"EtcdTLS(server_name={self.server_name!r}, key=<redacted>)"


def parse_endpoints(value: str | Sequence[str]) -> tuple[str, ...]:
    """``https://host:2379,...`` (or a list) as a tuple of URLs; an endpoint must be http(s)://host:port."""
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    if not items:
        raise EtcdError("no etcd endpoints given")
    for item in items:
        parts = urlsplit(item)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.port is None:
            raise EtcdError(f"etcd endpoint {item!r} is not http(s)://host:port")
    return tuple(items)


class EtcdClient:
    """Calls one member at a time, trying ``endpoints`` in order; gRPC errors leave it as ``EtcdError``s."""

    def __init__(self, endpoints: Sequence[str], tls: EtcdTLS | None, *, timeout_s: float = 10.0) -> None:
        self.endpoints = parse_endpoints(endpoints)
        self._tls = tls
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"EtcdClient({', '.join(self.endpoints)})"

    def status(self, endpoint: str | None = None) -> MemberStatus:
        """Maintenance.Status of ``endpoint``, or of the first endpoint that answers."""
        status: MemberStatus = self._first(
            endpoint, lambda ch: ch.unary_unary(STATUS_METHOD, encode_empty, decode_status)
        )
        return status

    def count_keys(self, endpoint: str | None = None) -> KeyCount:
        """How many keys the whole keyspace holds and the revision the member is at (a count-only Range)."""
        counted: KeyCount = self._first(
            endpoint, lambda ch: ch.unary_unary(RANGE_METHOD, encode_count_all, decode_count)
        )
        return counted

    def snapshot(self, endpoint: str, *, timeout_s: float = 900.0) -> Iterator[SnapshotChunk]:
        """The raw Maintenance.Snapshot stream of one member. A transport failure mid-stream is
        ``SnapshotIncomplete``: the caller must not keep what it received (``snapshot.SnapshotReader`` checks)."""
        channel = self._channel(endpoint)
        try:
            call = channel.unary_stream(
                SNAPSHOT_METHOD, request_serializer=encode_empty, response_deserializer=decode_snapshot_chunk
            )
            stream = call(None, timeout=timeout_s)
            received = False
            try:
                for chunk in stream:
                    received = True
                    yield chunk
            except Exception as exc:
                error = _translate(endpoint, "snapshot", exc)
                if received:
                    raise SnapshotIncomplete(f"etcd {endpoint}: snapshot stream broke off: {error}") from exc
                raise error from exc
        finally:
            channel.close()

    def _first(self, endpoint: str | None, method: Callable[[Any], Any]) -> Any:
        errors: list[str] = []
        for target in (endpoint,) if endpoint else self.endpoints:
            channel = self._channel(target)
            try:
                return method(channel)(None, timeout=self._timeout_s)
            except Exception as exc:
                error = _translate(target, "call", exc)
                if not isinstance(error, EtcdUnavailable):
                    raise error from exc
                errors.append(str(error))
            finally:
                channel.close()
        raise EtcdUnavailable("; ".join(errors))

    def _channel(self, endpoint: str) -> Any:
        import grpc  # cold start: only the functions that speak to etcd load grpcio

        parts = urlsplit(endpoint)
        target = f"{parts.hostname}:{parts.port}"
        options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", _MAX_MESSAGE)]
        if parts.scheme == "http":
            return grpc.insecure_channel(target, options=options)
        if self._tls is None:
            creds = grpc.ssl_channel_credentials()
        else:
            creds = grpc.ssl_channel_credentials(
                root_certificates=self._tls.ca, private_key=self._tls.key, certificate_chain=self._tls.cert
            )
            if self._tls.server_name:
                options.append(("grpc.ssl_target_name_override", self._tls.server_name))
        return grpc.secure_channel(target, creds, options=options)


def _translate(endpoint: str, what: str, exc: Exception) -> EtcdError:
    """A gRPC error as an ``EtcdError`` naming the endpoint; details only, never request or response bodies."""
    if isinstance(exc, EtcdError):
        return exc
    code = getattr(exc, "code", None)
    name = getattr(code(), "name", "") if callable(code) else ""
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)  # type: ignore[attr-defined]
    message = f"etcd {endpoint}: {what} failed: {name or type(exc).__name__}: {details}"
    if not name or name in _TRANSPORT_CODES:
        return EtcdUnavailable(message)
    return EtcdRefused(message)
