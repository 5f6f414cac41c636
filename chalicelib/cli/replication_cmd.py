"""``lifeboat replication``: status (lag, backlog), copies (the 3-2-1 report) and a reconciler run."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, console, emit_json, table


def add_parser(sub: Any, add_aws_options: Any) -> None:
    replication = sub.add_parser("replication", help="cross-region replication of the repository")
    actions = replication.add_subparsers(dest="action", required=True)
    p = actions.add_parser("status", help="lag and backlog per cluster and replica region")
    _options(p, add_aws_options)
    p.add_argument("--cluster", default=None, help="only this cluster (default: every cluster)")
    p = actions.add_parser("copies", help="per policy: copies, kinds of storage, off-region (the 3-2-1 rule)")
    _options(p, add_aws_options)
    p.add_argument("--cluster", default=None, help="only this cluster (default: every cluster)")
    p = actions.add_parser("reconcile", help="replicate every backup the replica region does not have yet, now")
    _options(p, add_aws_options)


def _options(p: argparse.ArgumentParser, add_aws_options: Any) -> None:
    add_aws_options(p)
    # Without the option, Settings.from_env takes the environment's value.
    p.add_argument("--replica-bucket", help="env LIFEBOAT_REPLICA_BUCKET")
    p.add_argument("--replica-region", help="env LIFEBOAT_REPLICA_REGION")
    p.add_argument("--replica-kms-key-id", help="env LIFEBOAT_REPLICA_KMS_KEY_ID")


def _clusters(args: argparse.Namespace, services: Any) -> list[str]:
    return [args.cluster] if args.cluster else list(services.catalog().list_clusters())


def _seconds(value: float | None) -> str | None:
    if value is None:
        return None
    return str(timedelta(seconds=round(value)))


def status(args: argparse.Namespace, services: Any) -> int:
    from chalicelib.replication.status import replication_status

    regions = [services.settings.replica_region] if services.settings.replica_region else []
    rows = replication_status(
        services.catalog(), regions=regions, now=datetime.now(UTC), clusters=_clusters(args, services)
    )
    if args.output != "table":
        emit_json(rows)
        return EXIT_OK
    columns = [
        "cluster",
        "region",
        "backups",
        "replicated",
        "pending",
        "failed",
        "backlog",
        "last lag",
        "max lag",
        "oldest waiting",
    ]
    lines = [
        [
            r["cluster"],
            r["region"],
            r["backups"],
            r["replicated"],
            r["pending"],
            r["failed"],
            r["backlog"],
            _seconds(r["last_lag_s"]),
            _seconds(r["max_lag_s"]),
            _seconds(r["oldest_backlog_age_s"]),
        ]
        for r in rows
    ]
    out = console()
    out.print(table("Replication", columns, lines))
    for r in rows:
        if r["last_error"]:
            out.print(f"[red]{r['cluster']} {r['region']}:[/red] {r['last_error']}")
    return EXIT_OK


def copies(args: argparse.Namespace, services: Any) -> int:
    from chalicelib.replication.report import copies_report

    rows = [row for cluster in _clusters(args, services) for row in copies_report(services, cluster)]
    if args.output != "table":
        emit_json(rows)
    else:
        lines = [
            [
                r["cluster"],
                r["policy"],
                r["backup_id"],
                r["copies"],
                ", ".join(r["kinds_of_storage"]),
                ", ".join(r["off_region_regions"]) or "no",
                "ok" if r["rule_ok"] else "; ".join(r["problems"]),
            ]
            for r in rows
        ]
        columns = ["cluster", "policy", "latest backup", "copies", "kinds of storage", "off-region", "3-2-1"]
        console().print(table("Copies (the live cluster counts as one)", columns, lines))
    return EXIT_OK if all(r["rule_ok"] for r in rows) else EXIT_PARTIAL


def reconcile(args: argparse.Namespace, services: Any) -> int:
    from chalicelib.replication import Reconciler

    # Run by hand, nothing is too young and there is no Lambda deadline: everything missing is replicated.
    reconciler = Reconciler(
        services.replicator(),
        services.catalog(),
        clock=lambda: datetime.now(UTC),
        min_age=timedelta(0),
        max_backups=1_000_000,
    )
    report = reconciler.run().to_dict()
    if args.output != "table":
        emit_json(report)
    else:
        rows = [[key, value if not isinstance(value, list | dict) else len(value)] for key, value in report.items()]
        out = console()
        out.print(table("Reconciled", ["", "value"], rows))
        for name, error in report["failed"].items():
            out.print(f"[red]{name}:[/red] {error}")
    return EXIT_ERROR if report["failed"] else EXIT_OK
