"""Thin AWS adapters (SQS, EventBridge, Secrets Manager, EC2 snapshots): each takes its client, only translates."""

from __future__ import annotations

from chalicelib.aws.errors import AccessDenied, AwsError, AwsUnavailable, NotFound, Throttled

__all__ = ["AccessDenied", "AwsError", "AwsUnavailable", "NotFound", "Throttled"]
