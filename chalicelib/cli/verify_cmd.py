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
        description="With a deployment's verification queue (LIFEBOAT_VERIFICATION_QUEUE_URL) the run is sent there "
        "and its id printed; --wait then waits for its end. Without one (or with --here) it runs in this process "
        "and waits. Exit 0 when it passed, 1 when not. The cluster it restores into is the policy's "
        "verify.target_cluster (default the policy's own), reached through its registration (lifeboat clusters add).",
    )
    add_aws_options(p)
    p.add_argument("policy")
    p.add_argument("--wait", action="store_true", help="wait for a queued run to end and print its result")
    p.add_argument("--here", action="store_true", help="run in this process even when a queue is configured")
    p.add_argument("--timeout", type=int, default=3600, help="seconds --wait waits at most (default 3600)")

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
    queued = bool(services.settings.verification_queue_url) and not args.here
    worker = services.verification_worker(publish_metrics=False, use_queue=False)
    pending, _ = worker.start(args.policy)
    if queued:
        from chalicelib.verification.worker import VerifyMessage

        services.verification_queue().send(VerifyMessage(pending.verification_id).to_json())
        if not args.wait:
            console().print(f"verification {pending.verification_id} of {args.policy} queued", highlight=False)
            return EXIT_OK
        done = _wait_for(services, pending.verification_id, args.timeout)
    else:
        done = worker.handle(pending.verification_id)
    if done is None:
        raise CliError(f"verification {pending.verification_id} is held by another worker; see verifications describe")
    _show(args, done)
    return EXIT_OK if done.passed else EXIT_ERROR


def _wait_for(services: Any, run_id: str, timeout_s: int, poll_s: float = 5.0) -> Any:
    """The run once it has ended; a CliError naming it when it has not within ``timeout_s``."""
    import time

    from chalicelib.catalog.verifications import TERMINAL

    catalog = _catalog(services)
    deadline = time.monotonic() + timeout_s
    while True:
        record = catalog.get(run_id)
        if record.state in TERMINAL:
            return record
        if time.monotonic() >= deadline:
            raise CliError(
                f"verification {run_id} is still {record.state} after {timeout_s} s; see verifications describe"
            )
        time.sleep(poll_s)


def list_runs(args: argparse.Namespace, services: Any) -> int:
    from rich.table import Table

    records = _catalog(services).list_for_policy(args.policy, limit=args.limit)
    if args.output != "table":
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
    if args.output != "table":
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
