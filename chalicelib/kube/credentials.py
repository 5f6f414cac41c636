"""Credentials values: endpoint, CA, client certificate, and bearer-token providers (static, file, EKS)."""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from chalicelib.kube.errors import CredentialsError

EKS_TOKEN_PREFIX = "k8s-aws-v1."
K8S_AWS_ID_HEADER = "x-k8s-aws-id"
# The presigned URL itself expires after 60 s, but EKS accepts a token for 15 minutes after signing (as
# `aws eks get-token` documents); refreshing after 10 leaves room for clock skew and long requests.
EKS_URL_EXPIRES = 60
EKS_TOKEN_REFRESH_AFTER = 600.0
# Projected service-account tokens rotate on disk; client-go re-reads them every minute, so do we.
TOKEN_FILE_REREAD_AFTER = 60.0
_PEM_MARKER = b"-----BEGIN CERTIFICATE-----"


@runtime_checkable
class TokenProvider(Protocol):
    """Something that hands out a current bearer token."""

    def token(self) -> str: ...


class StaticToken:
    """A bearer token that never changes (service-account token, kubeconfig ``token``)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise CredentialsError("empty bearer token")
        self._token = token

    def token(self) -> str:
        return self._token

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


class FileToken:
    """A bearer token read from a file and re-read periodically, because projected tokens rotate."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._read_at = 0.0

    def token(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now - self._read_at >= TOKEN_FILE_REREAD_AFTER:
                try:
                    token = self._path.read_text().strip()
                except OSError as exc:
                    raise CredentialsError(f"cannot read token file {self._path}: {exc.strerror}") from exc
                if not token:
                    raise CredentialsError(f"token file {self._path} is empty")
                self._token, self._read_at = token, now
            return self._token

    def __repr__(self) -> str:
        return f"FileToken({str(self._path)!r})"


def _move_k8s_aws_id_to_context(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    # GetCallerIdentity has no such parameter, so it is taken out before validation and turned into a header below.
    if K8S_AWS_ID_HEADER in params:
        context[K8S_AWS_ID_HEADER] = params.pop(K8S_AWS_ID_HEADER)


def _sign_k8s_aws_id_header(request: Any, **_: Any) -> None:
    # Added before signing so the header is part of X-Amz-SignedHeaders: EKS checks the token names its cluster.
    if K8S_AWS_ID_HEADER in request.context:
        request.headers[K8S_AWS_ID_HEADER] = request.context[K8S_AWS_ID_HEADER]


class EksTokenProvider:
    """EKS bearer tokens: a presigned STS GetCallerIdentity URL naming the cluster, as ``aws eks get-token`` makes."""

    def __init__(self, sts_client: Any, cluster_name: str, *, clock: Callable[[], float] = time.time) -> None:
        self._sts = sts_client
        self._cluster = cluster_name
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._issued_at = 0.0
        events = sts_client.meta.events
        # unique_id keeps several providers sharing one client from registering the handlers twice.
        events.register(
            "provide-client-params.sts.GetCallerIdentity",
            _move_k8s_aws_id_to_context,
            unique_id="lifeboat-k8s-aws-id-params",
        )
        events.register(
            "before-sign.sts.GetCallerIdentity", _sign_k8s_aws_id_header, unique_id="lifeboat-k8s-aws-id-header"
        )

    @property
    def cluster_name(self) -> str:
        return self._cluster

    def token(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now - self._issued_at >= EKS_TOKEN_REFRESH_AFTER:
                self._token = self._new_token()
                self._issued_at = now
            return self._token

    def _new_token(self) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            url = self._sts.generate_presigned_url(
                "get_caller_identity",
                Params={K8S_AWS_ID_HEADER: self._cluster},
                ExpiresIn=EKS_URL_EXPIRES,
                HttpMethod="GET",
            )
        except (BotoCoreError, ClientError) as exc:
            raise CredentialsError(f"cannot sign an EKS token for cluster {self._cluster!r}: {exc}") from exc
        encoded = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
        return EKS_TOKEN_PREFIX + encoded

    def __repr__(self) -> str:
        return f"EksTokenProvider(cluster={self._cluster!r})"


@dataclass(frozen=True)
class ClusterCredentials:
    """Where a cluster's API server is and how to prove who we are to it."""

    server: str
    ca_data: bytes | None = None  # PEM; None trusts the system store
    token_provider: TokenProvider | None = field(default=None, repr=False)
    client_cert: bytes | None = field(default=None, repr=False)  # PEM
    client_key: bytes | None = field(default=None, repr=False)  # PEM
    insecure_skip_tls_verify: bool = False
    name: str = ""
    tls_server_name: str | None = None
    proxy_url: str | None = None

    def __post_init__(self) -> None:
        if not self.server.startswith(("https://", "http://")):
            raise CredentialsError(f"cluster {self.name!r}: server {self.server!r} is not an http(s) URL")
        if (self.client_cert is None) != (self.client_key is None):
            raise CredentialsError(f"cluster {self.name!r}: a client certificate needs its key and vice versa")


def decode_ca(value: str | bytes, where: str) -> bytes:
    """A CA bundle given either as PEM or as base64 of PEM (both forms are common in the wild)."""
    raw = value.encode() if isinstance(value, str) else value
    if _PEM_MARKER in raw:
        return raw
    try:
        decoded = base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CredentialsError(f"{where}: CA is neither PEM nor base64 of PEM") from exc
    if _PEM_MARKER not in decoded:
        raise CredentialsError(f"{where}: CA does not contain a PEM certificate")
    return decoded
