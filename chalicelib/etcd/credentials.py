"""etcd client certificates from Secrets Manager: a JSON secret ``{"ca", "cert", "key"}`` of PEM strings."""

from __future__ import annotations

from typing import Any

import orjson

from chalicelib.etcd.client import EtcdTLS
from chalicelib.etcd.errors import EtcdCredentialsError

SECRET_FIELDS = ("ca", "cert", "key")


def tls_from_secret(secretsmanager_client: Any, secret_id: str) -> EtcdTLS:
    """The TLS material the secret holds (``server_name`` optional); errors never echo the secret's text."""
    from chalicelib.aws.errors import AwsError
    from chalicelib.aws.secrets import SecretReader

    try:
        text = SecretReader(secretsmanager_client).read(secret_id)
    except AwsError as exc:
        raise EtcdCredentialsError(f"cannot read etcd client certificate secret {secret_id!r}: {exc.code}") from exc
    try:
        doc = orjson.loads(text or b"")
    except orjson.JSONDecodeError as exc:
        raise EtcdCredentialsError(f"secret {secret_id!r} is not JSON {{ca, cert, key}}") from exc
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) and doc[k] for k in SECRET_FIELDS):
        raise EtcdCredentialsError(f"secret {secret_id!r} must hold JSON with PEM strings ca, cert and key")
    server_name = doc.get("server_name")
    return EtcdTLS(
        ca=doc["ca"].encode(),
        cert=doc["cert"].encode(),
        key=doc["key"].encode(),
        server_name=server_name if isinstance(server_name, str) and server_name else None,
    )


def secret_value(ca: bytes, cert: bytes, key: bytes) -> str:
    """The secret's text for these PEM files (what ``lifeboat clusters add`` documents and tests store)."""
    return orjson.dumps({"ca": ca.decode(), "cert": cert.decode(), "key": key.decode()}).decode()
