"""The Kubernetes adapter: credentials, discovery, paged raw-JSON listing and writes. Importing it is cheap."""

from __future__ import annotations

from chalicelib.kube.auth import credentials_from_secret, eks_credentials, load_kubeconfig
from chalicelib.kube.client import KubeClient
from chalicelib.kube.credentials import ClusterCredentials, EksTokenProvider, FileToken, StaticToken, TokenProvider
from chalicelib.kube.errors import (
    AlreadyExists,
    Conflict,
    CredentialsError,
    Forbidden,
    Gone,
    Invalid,
    InvalidKubeconfig,
    InvalidResponse,
    KubeError,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    Unreachable,
    WaitTimeout,
)
from chalicelib.kube.paging import ListPage

__all__ = [
    "AlreadyExists",
    "ClusterCredentials",
    "Conflict",
    "CredentialsError",
    "EksTokenProvider",
    "FileToken",
    "Forbidden",
    "Gone",
    "Invalid",
    "InvalidKubeconfig",
    "InvalidResponse",
    "KubeClient",
    "KubeError",
    "ListPage",
    "NotFound",
    "ServerError",
    "StaticToken",
    "TokenProvider",
    "TooManyRequests",
    "Unauthorized",
    "Unreachable",
    "WaitTimeout",
    "credentials_from_secret",
    "eks_credentials",
    "load_kubeconfig",
]
