"""Seal a Secret for a sealed-secrets controller, in the controller's own format (strict scope).

Each value is ``HybridEncrypt`` of bitnami-labs/sealed-secrets ``pkg/crypto``: a random 32-byte AES-256-GCM session
key, sealed with RSA-OAEP (SHA-256) under the controller's public key with the label ``<namespace>/<name>``;
the output is the RSA ciphertext's length (2 bytes, big-endian), the RSA ciphertext, then the value sealed with
AES-GCM under a zero nonce (the key is used once) and no additional data; base64 (standard) in the SealedSecret.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

_SESSION_KEY_BYTES = 32
_NONCE = bytes(12)


def load_public_key(pem: bytes) -> Any:
    """The RSA public key of a controller certificate (``kubeseal --fetch-cert``) or of a PEM public key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = (
        x509.load_pem_x509_certificate(pem).public_key()
        if b"CERTIFICATE" in pem
        else serialization.load_pem_public_key(pem)
    )
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the sealed-secrets certificate must hold an RSA key")
    return key


def hybrid_encrypt(public_key: Any, plaintext: bytes, label: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    session_key = secrets.token_bytes(_SESSION_KEY_BYTES)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=label)
    sealed_key: bytes = public_key.encrypt(session_key, oaep)
    return len(sealed_key).to_bytes(2, "big") + sealed_key + AESGCM(session_key).encrypt(_NONCE, plaintext, None)


def seal_secret(secret: dict[str, Any], public_key: Any) -> dict[str, Any]:
    """A strict-scope ``bitnami.com/v1alpha1`` SealedSecret for ``secret`` (``data`` and ``stringData``)."""
    meta = secret.get("metadata") or {}
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
    label = f"{namespace}/{name}".encode()
    values: dict[str, bytes] = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    values.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
    encrypted = {k: base64.b64encode(hybrid_encrypt(public_key, v, label)).decode() for k, v in sorted(values.items())}
    template_meta = {"name": name, "namespace": namespace}
    template_meta.update({k: meta[k] for k in ("labels", "annotations") if meta.get(k)})
    template: dict[str, Any] = {"metadata": template_meta}
    if secret.get("type"):
        template["type"] = secret["type"]
    return {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"encryptedData": encrypted, "template": template},
    }
