"""``lifeboat verify run`` and ``lifeboat verifications list|describe``: restore verification from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, CliError, console, emit_json


def add_parsers(sub: Any, add_aws_options: Any) -> None:
    verify = sub.add_parser("verify", help="prove a policy's backups restore").add_subparsers(
        dest="action", required=True
    )
    p = verify.add_parser(
        "run",
        help="restore the policy's newest backup into scratch namespaces, check every object, clean up",
        description="Runs the verification in this process and waits for its end (exit 0 when it passed, 1 when "
        "not). The cluster it restores into is the policy's verify.target_cluster (default the policy's own), "
        "reached through its registration (lifeboat clusters add).",
    )
    add_aws_options(p)
    p.add_argument("policy")

    runs = sub.add_parser("verifications", help="verification runs and their results").add_subparsers(
        dest="action", required=True
    )
    p = runs.add_parser("list", help="a policy's verification runs, newest first")
    add_aws_options(p)
    p.add_argument("policy")
    p.add_argument("--limit", type=int, default=20)
    p = runs.add_parser("describe", help="one run: state, backup, RTO and phases, every failed object")
    add_aws_options(p)
    p.add_argument("verification_id")


def _catalog(services: Any) -> Any:
    from chalicelib.catalog.verifications import VerificationCatalog

    return VerificationCatalog(services.client("dynamodb"), services.settings.table)


def run(args: argparse.Namespace, services: Any) -> int:
    worker = services.verification_worker(publish_metrics=False)
    pending, _ = worker.start(args.policy)
    done = worker.handle(pending.verification_id)
    if done is None:
        raise CliError(f"verification {pending.verification_id} is held by another worker; see verifications describe")
    _show(args, done)
    return EXIT_OK if done.passed else EXIT_ERROR


def list_runs(args: argparse.Namespace, services: Any) -> int:
    from rich.table import Table

    records = _catalog(services).list_for_policy(args.policy, limit=args.limit)
    if args.output == "json":
        emit_json([_as_dict(r) for r in records])
        return EXIT_OK
    table = Table(title=f"verifications of {args.policy}")
    for column in ("id", "state", "backup", "RTO", "target", "checked", "problems", "created"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.verification_id,
            r.state,
            r.backup_id or "-",
            _rto(r.rto_s),
            f"{r.rto_target_minutes} min" if r.rto_target_minutes else "-",
            str(r.checked),
            str(r.problems_total),
            r.created_at,
        )
    console().print(table)
    return EXIT_OK


def describe(args: argparse.Namespace, services: Any) -> int:
    _show(args, _catalog(services).get(args.verification_id))
    return EXIT_OK


def _show(args: argparse.Namespace, record: Any) -> None:
    if args.output == "json":
        emit_json(_as_dict(record))
        return
    out = console()
    over = " (over target)" if record.rto_exceeded else ""
    target = f" vs target {record.rto_target_minutes} min{over}" if record.rto_target_minutes else ""
    out.print(f"verification {record.verification_id} of {record.policy}: {record.state}", highlight=False)
    out.print(f"  backup {record.cluster}/{record.backup_id or '-'} into {record.target_cluster}", highlight=False)
    out.print(f"  RTO {_rto(record.rto_s)}{target}", highlight=False)
    if record.phases:
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in record.phases.items())
        out.print(f"  phases: {phases}", highlight=False)
    out.print(f"  objects checked {record.checked}, left alone {record.skipped}", highlight=False)
    if record.message:
        out.print(f"  {record.message}", highlight=False, markup=False)
    for problem in record.problems:
        out.print(f"  - {problem.get('problem')}", highlight=False, markup=False)
    if record.problems_total > len(record.problems):
        out.print(f"  ... and {record.problems_total - len(record.problems)} more", highlight=False)
    cleanup = record.cleanup or {}
    for error in cleanup.get("errors") or []:
        out.print(f"  cleanup: {error}", highlight=False, markup=False)


def _rto(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _as_dict(record: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(record)


HANDLERS: dict[tuple[str, str | None], Any] = {
    ("verify", "run"): run,
    ("verifications", "list"): list_runs,
    ("verifications", "describe"): describe,
}
