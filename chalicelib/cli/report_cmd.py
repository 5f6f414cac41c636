"""``lifeboat report --to report.html``: the protection report, gathered from the catalog and written as one file."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib.cli.output import EXIT_OK, CliError, console

HISTORY = 60  # points per chart: about two months of a daily policy


def add_parser(sub: Any, add_aws_options: Any) -> None:
    p = sub.add_parser("report", help="write the protection report (RPO, RTO, verifications, 3-2-1) as one HTML file")
    add_aws_options(p)
    p.add_argument("--to", type=Path, required=True, dest="to_path", help="the HTML file to write")


def build(services: Any, now: datetime) -> Any:
    from chalicelib.catalog.verifications import VerificationCatalog
    from chalicelib.core.models import BackupState
    from chalicelib.core.report_html import Point, PolicyReport, Report
    from chalicelib.maintenance.retention import taken_at
    from chalicelib.replication.report import copies_report

    statuses = services.status_service().statuses()
    verifications = VerificationCatalog(services.client("dynamodb"), services.settings.table)
    policies = {r.policy.name: r.policy for r in services.policy_catalog().list()}
    copies: dict[tuple[str, str], dict[str, Any]] = {}
    completed: dict[tuple[str, str], list[Any]] = {}
    for cluster in sorted({s.cluster for s in statuses}):
        for row in copies_report(services, cluster):
            copies[(cluster, row["policy"])] = row
        token = None
        while True:
            page, token = services.catalog().list(cluster, limit=100, next_token=token, states=[BackupState.COMPLETED])
            for record in page:
                completed.setdefault((cluster, record.policy or ""), []).append(record)
            if token is None:
                break
    reports = []
    for status in sorted(statuses, key=lambda s: s.name):
        backups = sorted(completed.get((status.cluster, status.name), []), key=taken_at)[-(HISTORY + 1) :]
        rpo = [
            Point(_iso(taken_at(b)), (taken_at(b) - taken_at(a)).total_seconds() / 60)
            for a, b in zip(backups, backups[1:], strict=False)
        ]
        rpo.append(Point(_iso(now), status.rpo_minutes))
        runs = verifications.list_for_policy(status.name, limit=HISTORY)
        ended = [r for r in runs if r.state in ("Succeeded", "Failed")]
        rto = [Point(r.created_at, r.rto_s / 60) for r in reversed(ended) if r.passed and r.rto_s is not None]
        block = getattr(policies.get(status.name), "verify", None)
        reports.append(
            PolicyReport(
                name=status.name,
                cluster=status.cluster,
                rpo_minutes=status.rpo_minutes,
                rpo_target_minutes=status.rpo_target_minutes,
                rpo_points=tuple(rpo),
                rto_target_minutes=block.rto_target_minutes if block else None,
                rto_points=tuple(rto),
                verification=asdict(ended[0]) if ended else None,
                copies=copies.get((status.cluster, status.name)),
            )
        )
    return Report(generated_at=_iso(now), policies=tuple(reports))


def report(args: argparse.Namespace, services: Any) -> int:
    from chalicelib.core.report_html import render

    page = render(build(services, datetime.now(UTC)))
    try:
        args.to_path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"could not write the report to {args.to_path}: {exc.strerror or exc}") from exc
    console().print(f"wrote {args.to_path} ({len(page.encode()) // 1024 + 1} KiB)", highlight=False)
    return EXIT_OK


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


HANDLERS: dict[tuple[str, str | None], Any] = {("report", None): report}
