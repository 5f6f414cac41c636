"""Thin AWS adapters (SQS, EventBridge, Secrets Manager): each takes its boto3 client and only translates errors."""

from __future__ import annotations

from chalicelib.aws.errors import AccessDenied, AwsError, AwsUnavailable, NotFound, Throttled

__all__ = ["AccessDenied", "AwsError", "AwsUnavailable", "NotFound", "Throttled"]
