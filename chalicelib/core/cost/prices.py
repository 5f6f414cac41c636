"""The price table the estimate uses: AWS public list prices for us-east-1, versioned, overridable by a JSON file.

The replica region is priced like us-east-1 (us-west-2 lists the same prices for these items). Free tiers are not
applied: the estimate is list price, so the same numbers hold for an account that already uses its free tier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PRICES_VERSION = 1
PRICES: dict[str, Any] = {
    "version": PRICES_VERSION,
    "region": "us-east-1",
    "taken": "2026-12",
    "source": "AWS public pricing pages (list prices, no free tier, no discounts)",
    "lambda_gb_second": 0.0000166667,  # x86
    "lambda_request": 0.20 / 1e6,
    "s3_standard_gb_month": 0.023,
    "s3_standard_ia_gb_month": 0.0125,
    "s3_glacier_ir_gb_month": 0.004,
    "s3_put_copy_list": 0.005 / 1000,  # PUT, COPY, POST, LIST
    "s3_get": 0.0004 / 1000,
    "transfer_inter_region_gb": 0.02,
    "dynamodb_write_request_unit": 0.625 / 1e6,  # on-demand
    "dynamodb_read_request_unit": 0.125 / 1e6,
    "dynamodb_gb_month": 0.25,
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KiB chunk
    "eventbridge_event": 1.00 / 1e6,  # custom events put on a bus
    "eventbridge_scheduler_invocation": 1.00 / 1e6,
    "kms_key_month": 1.00,
    "kms_request": 0.03 / 10000,
    "secretsmanager_secret_month": 0.40,
    "secretsmanager_request": 0.05 / 10000,
    "ebs_snapshot_gb_month": 0.05,
    "cloudwatch_metric_month": 0.30,
    "cloudwatch_alarm_month": 0.10,
    "cloudwatch_put_metric_request": 0.01 / 1000,
    "cloudwatch_logs_ingest_gb": 0.50,
}


class InvalidPrices(ValueError):
    """A price override names an unknown price or gives a value that is not a non-negative number."""


def with_overrides(overrides: Mapping[str, Any], base: Mapping[str, Any] = PRICES) -> dict[str, Any]:
    """``base`` with ``overrides`` applied; every overridden price must already exist and be a number >= 0."""
    table = dict(base)
    meta = {"version", "region", "taken", "source"}
    for key, value in overrides.items():
        if key not in table:
            raise InvalidPrices(
                f"unknown price {key!r} (known: {', '.join(sorted(k for k in table if k not in meta))})"
            )
        if key in meta:
            table[key] = str(value)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise InvalidPrices(f"price {key!r} must be a non-negative number, got {value!r}")
        table[key] = float(value)
    return table
