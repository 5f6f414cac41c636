"""CLI commands for policies, clusters, retention previews, status and maintenance."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, EXIT_USAGE, console, emit_json, err_console, human_bytes, table


def add_parsers(sub: Any, add_aws_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``policies``, ``clusters``, ``retention``, ``status`` and ``maintenance`` on ``sub``."""
    policies = sub.add_parser("policies", help="backup policies").add_subparsers(dest="action", required=True)
    p = policies.add_parser("apply", help="create or update the policies of a policy file")
    add_aws_options(p)
    p.add_argument("-f", "--file", required=True, type=Path, help="policy file (YAML or JSON)")
    for action, text in (("list", "every policy"), ("describe", "one policy and its recent runs"), ("delete", "")):
        p = policies.add_parser(action, help=text or "stop scheduling a policy (its backups stay)")
        add_aws_options(p)
        if action != "list":
            p.add_argument("name")

    clusters = sub.add_parser("clusters", help="registered clusters").add_subparsers(dest="action", required=True)
    p = clusters.add_parser("add", help="register a cluster after checking Lifeboat can reach it")
    add_aws_options(p)
    p.add_argument("name", help="the cluster's name in Lifeboat (policies refer to it)")
    p.add_argument("--eks-cluster", help="EKS cluster name (authenticates with an IAM token)")
    p.add_argument("--eks-region", help="the EKS cluster's region (default: --region)")
    p.add_argument("--secret-id", help="Secrets Manager secret holding a kubeconfig (or a token, with --token)")
    p.add_argument("--context", help="kubeconfig context in the secret (default: its current-context)")
    p.add_argument("--token", action="store_true", help='the secret is JSON {"server", "token", "ca"}')
    p.add_argument("--no-verify", action="store_true", help="register without trying to connect")
    p.add_argument("--etcd-endpoints", help="self-managed: etcd client URLs https://host:2379,... (for snapshots)")
    p.add_argument("--etcd-secret-id", help='self-managed: secret with etcd client TLS, JSON {"ca","cert","key"}')
    for action, text in (("list", "registered clusters"), ("remove", "forget a cluster's registration")):
        p = clusters.add_parser(action, help=text)
        add_aws_options(p)
        if action == "remove":
            p.add_argument("name")

    retention = sub.add_parser("retention", help="retention").add_subparsers(dest="action", required=True)
    p = retention.add_parser("preview", help="which backups of a policy retention keeps, and why")
    add_aws_options(p)
    p.add_argument("policy")

    p = sub.add_parser("status", help="every policy: last success, RPO against target, next run, retention")
    add_aws_options(p)

    maintenance = sub.add_parser("maintenance", help="repository maintenance").add_subparsers(
        dest="action", required=True
    )
    p = maintenance.add_parser("run", help="retention and garbage collection now (as the daily function does)")
    add_aws_options(p)
    p.add_argument("--dry-run", action="store_true", help="report what would be deleted, delete nothing")
    p.add_argument("--safety-margin-hours", type=float, default=24.0, help="never delete packs younger than this")
    p.add_argument("--wait-seconds", type=float, default=300.0, help="how long to wait for running backups")


def policies_apply(args: Any, services: Any) -> int:
    applied = services.policy_service().apply_text(args.file.read_bytes())
    if args.output != "table":
        emit_json([a.__dict__ for a in applied])
    else:
        rows = [[a.name, a.cluster, a.change, a.next_run_at] for a in applied]
        console().print(table("Policies applied", ["policy", "cluster", "change", "next run"], rows))
    return EXIT_OK


def policies_list(args: Any, services: Any) -> int:
    from chalicelib.scheduling.policies import policy_view

    records = services.policy_service().list()
    if args.output != "table":
        emit_json([policy_view(r) for r in records])
        return EXIT_OK
    rows = [
        [
            r.policy.name,
            r.policy.cluster,
            f"{r.policy.schedule.cron} ({r.policy.schedule.timezone})",
            "yes" if r.policy.enabled else "no",
            r.next_run_at,
            _last_run(r.last_run),
        ]
        for r in records
    ]
    console().print(table("Policies", ["policy", "cluster", "schedule", "enabled", "next run", "last run"], rows))
    return EXIT_OK


def policies_describe(args: Any, services: Any) -> int:
    from chalicelib.scheduling.policies import policy_view

    service = services.policy_service()
    record = service.get(args.name)
    runs = service.runs(args.name)
    if args.output != "table":
        emit_json({**policy_view(record), "recent_runs": [r.to_dict() for r in runs]})
        return EXIT_OK
    import yaml

    out = console()
    out.print(yaml.safe_dump({"policies": [record.policy.to_dict()]}, sort_keys=False).rstrip())
    out.print(f"next run: {record.next_run_at or '-'}   runs: {record.runs}")
    rows = [[r.scheduled_for, r.outcome, r.job_id, r.reason] for r in runs]
    out.print(table("Recent runs", ["scheduled for", "outcome", "job", "reason"], rows))
    return EXIT_OK


def policies_delete(args: Any, services: Any) -> int:
    record = services.policy_service().delete(args.name)
    if args.output != "table":
        emit_json({"deleted": record.policy.name, "cluster": record.policy.cluster})
    else:
        console().print(f"deleted policy {record.policy.name} (cluster {record.policy.cluster}); its backups stay")
    return EXIT_OK


def _etcd_target(args: Any) -> Any:
    from chalicelib.core.etcd import EtcdTarget, InvalidEtcdTarget

    if not (args.etcd_endpoints or args.etcd_secret_id):
        return None
    if not (args.etcd_endpoints and args.etcd_secret_id):
        raise InvalidEtcdTarget("give both --etcd-endpoints and --etcd-secret-id")
    return EtcdTarget.from_dict({"endpoints": args.etcd_endpoints, "secret_id": args.etcd_secret_id})


def clusters_add(args: Any, services: Any) -> int:
    from chalicelib.core.errors import CoreError
    from chalicelib.scheduling.clusters import cluster_auth
    from chalicelib.scheduling.errors import ClusterCheckFailed, InvalidClusterAuth

    try:
        auth = cluster_auth(
            eks_cluster=args.eks_cluster,
            region=args.eks_region or args.region,
            secret_id=args.secret_id,
            context=args.context,
            token=args.token,
        )
        etcd = _etcd_target(args)
    except (InvalidClusterAuth, CoreError) as exc:
        err_console().print(f"[red]error:[/red] {exc}")
        return EXIT_USAGE
    try:
        record, check = services.cluster_service().add(args.name, auth, verify=not args.no_verify, etcd=etcd)
    except ClusterCheckFailed as exc:
        if args.output != "table":
            emit_json({"cluster": args.name, "registered": False, "error": str(exc)})
        else:
            err_console().print(f"[red]error:[/red] {exc}")
        return EXIT_ERROR
    data = {
        "cluster": record.name,
        "registered": True,
        "auth": record.auth,
        "kubernetes_version": check.kubernetes_version,
        "resource_types": check.resource_types,
        "discovery_errors": check.discovery_errors,
        "etcd": record.etcd,
    }
    if args.output != "table":
        emit_json(data)
    else:
        version = check.kubernetes_version or "not checked"
        console().print(f"registered {record.name}: Kubernetes {version}, {check.resource_types} resource types")
        for group, error in check.discovery_errors:
            console().print(f"[yellow]warning:[/yellow] API group {group} did not answer discovery: {error}")
    return EXIT_OK


def clusters_list(args: Any, services: Any) -> int:
    records = services.cluster_service().list()
    if args.output != "table":
        emit_json([r.__dict__ for r in records])
        return EXIT_OK
    rows = [
        [r.name, (r.auth or {}).get("type", "(not registered)"), r.kubernetes_version, r.checked_at, r.first_seen]
        for r in records
    ]
    console().print(table("Clusters", ["cluster", "auth", "kubernetes", "checked", "first seen"], rows))
    return EXIT_OK


def clusters_remove(args: Any, services: Any) -> int:
    services.cluster_service().remove(args.name)
    console().print(f"unregistered {args.name}; its backups stay")
    return EXIT_OK


def retention_preview(args: Any, services: Any) -> int:
    plan = services.retention_service().plan(args.policy)
    if args.output != "table":
        decisions = [
            {"backup_id": d.backup_id, "taken_at": d.taken_at.isoformat(), "keep": d.keep, "reasons": list(d.reasons)}
            for d in plan.decisions
        ]
        emit_json({"policy": plan.policy, "cluster": plan.cluster, "retention": plan.summary, "backups": decisions})
        return EXIT_OK
    rows = [
        [d.backup_id, d.taken_at.isoformat(), "keep" if d.keep else "[red]drop[/red]", "; ".join(d.reasons)]
        for d in plan.decisions
    ]
    title = f"Retention of {plan.policy} ({plan.summary}): keep {len(plan.kept)}, drop {len(plan.dropped)}"
    console().print(table(title, ["backup", "taken at", "decision", "why"], rows))
    return EXIT_OK


def _copies_by_policy(services: Any, clusters: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """The 3-2-1 report of each policy's latest backup, keyed by (cluster, policy)."""
    from chalicelib.replication.report import copies_report

    out: dict[tuple[str, str], dict[str, Any]] = {}
    for cluster in sorted(clusters):
        for row in copies_report(services, cluster):
            out[(cluster, row["policy"])] = row
    return out


def status(args: Any, services: Any) -> int:
    statuses = services.status_service().statuses()
    copies = _copies_by_policy(services, {s.cluster for s in statuses})
    etcd = {e.cluster: e for e in services.etcd_status_service().statuses()}
    # Scripts (and cron jobs) can alarm on the exit code: 1 when any policy is past its RPO target, or its
    # verification is overdue or over its RTO target.
    exceeded = (
        any(s.rpo_exceeded for s in statuses)
        or any(e.rpo_exceeded for e in etcd.values())
        or any(s.verification is not None and (s.verification.overdue or s.verification.rto_exceeded) for s in statuses)
    )
    code = EXIT_ERROR if exceeded else EXIT_OK
    if args.output != "table":
        docs = []
        for s in statuses:
            doc = {**s.to_dict(), "copies": copies.get((s.cluster, s.name))}
            if s.cluster in etcd and s.name in etcd[s.cluster].policies:
                doc["etcd"] = etcd[s.cluster].to_dict()
            docs.append(doc)
        emit_json(docs)
        return code
    rows = []
    for s in statuses:
        target = f"{s.rpo_target_minutes} min" if s.rpo_target_minutes else "-"
        rpo = f"{s.rpo_minutes:.0f} min"
        report = copies.get((s.cluster, s.name))
        if report is None:
            rule = "-"
        elif report["rule_ok"]:
            rule = f"{report['copies']} copies, {report['kinds']} kinds, off-region: ok"
        else:
            rule = f"[yellow]{report['copies']} copies: {'; '.join(report['problems'])}[/yellow]"
        rows.append(
            [
                s.name,
                s.cluster,
                s.last_success_at or "never",
                f"[red]{rpo}[/red]" if s.rpo_exceeded else rpo,
                target,
                s.next_run_at if s.enabled else "disabled",
                f"{s.retained} kept ({s.retention})",
                rule,
            ]
        )
    headers = ["policy", "cluster", "last success", "RPO", "target", "next run", "retention", "3-2-1"]
    console().print(table("Policies", headers, rows))
    verified = [s for s in statuses if s.verification is not None]
    if verified:
        console().print(table("Restore verification", *_verification_rows(verified)))
    if etcd:
        console().print(table("etcd snapshots", *_etcd_rows(list(etcd.values()))))
    return code


def _verification_rows(statuses: list[Any]) -> tuple[list[str], list[list[str]]]:
    rows = []
    for s in statuses:
        v = s.verification
        rto = "-" if v.rto_s is None else (f"{v.rto_s:.0f} s" if v.rto_s < 120 else f"{v.rto_s / 60:.1f} min")
        target = f"{v.rto_target_minutes} min" if v.rto_target_minutes else "-"
        last = v.verified_at or "never"
        state = v.last_state or "-"
        rows.append(
            [
                s.name,
                f"[red]{last} (overdue)[/red]" if v.overdue else last,
                v.verified_backup_id or "-",
                f"[red]{rto}[/red]" if v.rto_exceeded else rto,
                target,
                f"[red]{state}[/red]" if state == "Failed" else state,
                v.next_at or "-",
            ]
        )
    return ["policy", "last verified", "backup", "RTO", "target", "latest run", "next run"], rows


def _etcd_rows(statuses: list[Any]) -> tuple[list[str], list[list[str]]]:
    rows = []
    for e in statuses:
        age = f"{e.age_minutes:.0f} min" if e.age_minutes is not None else "no verified snapshot"
        target = f"{e.rpo_target_minutes} min" if e.rpo_target_minutes else "-"
        latest = f"{e.latest_backup_id}: {e.latest_result}" if e.latest_backup_id else "-"
        schedules = "; ".join(e.schedules) or "-"
        age = f"[red]{age}[/red]" if e.rpo_exceeded else age
        rows.append([e.cluster, e.backup_id or "-", age, target, schedules, latest])
    return ["cluster", "newest verified", "age", "target", "etcd schedule", "latest verification"], rows


def maintenance_run(args: Any, services: Any) -> int:
    service = services.maintenance_service(
        safety_margin=timedelta(hours=args.safety_margin_hours), wait_s=args.wait_seconds
    )
    report = service.run(dry_run=args.dry_run)
    if args.output != "table":
        emit_json(report.to_dict())
    else:
        _print_maintenance(report)
    return EXIT_OK if report.status == "done" else EXIT_ERROR


def _print_maintenance(report: Any) -> None:
    out = console()
    if report.status != "done":
        out.print(f"[yellow]maintenance did not run:[/yellow] {report.message}")
        return
    verb = "would expire" if report.collection.dry_run else "expired"
    for e in report.expired:
        note = "" if e.outcome in ("expired", "would_expire") else f": {e.outcome}"
        out.print(f"{verb} {e.cluster}/{e.backup_id} (policy {e.policy}){note}")
    c = report.collection
    out.print(
        f"marked {c.blobs_live} of {c.blobs_indexed} indexed blobs live in {c.manifests} manifests; "
        f"packs: {c.packs} stored, {c.packs_live} live, {c.packs_young} young kept, "
        f"{len(c.packs_deleted)} {'to delete' if c.dry_run else 'deleted'} ({human_bytes(c.bytes_deleted)}); "
        f"{c.seconds:.1f} s"
    )
    if c.skipped:
        out.print(f"[yellow]{len(c.skipped)} objects are locked (Object Lock) and were kept[/yellow]")


def _last_run(run: dict[str, Any] | None) -> str:
    if not run:
        return "-"
    text = f"{run.get('outcome')} {run.get('scheduled_for')}"
    return f"{text}: {run['reason']}" if run.get("reason") else text


HANDLERS: dict[tuple[str, str | None], Callable[[Any, Any], int]] = {
    ("policies", "apply"): policies_apply,
    ("policies", "list"): policies_list,
    ("policies", "describe"): policies_describe,
    ("policies", "delete"): policies_delete,
    ("clusters", "add"): clusters_add,
    ("clusters", "list"): clusters_list,
    ("clusters", "remove"): clusters_remove,
    ("retention", "preview"): retention_preview,
    ("status", None): status,
    ("maintenance", "run"): maintenance_run,
}
