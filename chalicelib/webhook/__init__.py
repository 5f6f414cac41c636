"""Webhook-triggered restores: signed requests become restore jobs on a queue; a worker runs them."""

from __future__ import annotations

from chalicelib.webhook.errors import WebhookError
from chalicelib.webhook.signature import HEADER, SecretsManagerSecret, SignatureVerifier, StaticSecrets, sign

__all__ = ["HEADER", "SecretsManagerSecret", "SignatureVerifier", "StaticSecrets", "WebhookError", "sign"]
