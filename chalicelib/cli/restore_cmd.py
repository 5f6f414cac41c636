"""``lifeboat restore``: restore a backup into the cluster of a kubeconfig context, or show the plan."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from chalicelib.cli.output import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    CliError,
    console,
    emit_json,
    location,
    read_kubeconfig,
    table,
)
from chalicelib.cli.restore_journal import LocalRestoreJournal
from chalicelib.cli.velero import namespace_mappings
from chalicelib.settings import default_kubeconfig

_EXIT_BY_STATE = {"Completed": EXIT_OK, "PartiallyFailed": EXIT_PARTIAL}


def add_create_options(p: Any) -> None:
    """``restore create``'s options; Velero's spellings (``--namespace-mappings``, ``--existing-resource-policy``)
    sit next to the older ones and mean the same."""
    p.add_argument("--kubeconfig", default=default_kubeconfig())
    p.add_argument("--context", default=None, help="kubeconfig context of the target cluster")
    p.add_argument("--namespace-mapping", nargs="*", default=[], metavar="FROM:TO")
    p.add_argument(
        "--namespace-mappings",
        type=namespace_mappings,
        default=[],
        metavar="FROM:TO,...",
        help="Velero's spelling: pairs separated by commas",
    )
    p.add_argument("--include-namespaces", nargs="*", default=[], metavar="GLOB")
    p.add_argument("--exclude-namespaces", nargs="*", default=[], metavar="GLOB")
    p.add_argument("--include-resources", nargs="*", default=[], metavar="TYPE")
    p.add_argument("--exclude-resources", nargs="*", default=[], metavar="TYPE")
    p.add_argument("--selector", "-l", default="", help="only objects with these labels")
    p.add_argument("--existing", choices=("skip", "update"), default=None, help="what to do with existing objects")
    p.add_argument(
        "--existing-resource-policy",
        choices=("none", "update"),
        default=None,
        help="Velero's spelling: none leaves existing objects alone (as --existing skip), update updates them",
    )
    p.add_argument("--preserve-node-ports", action="store_true")
    p.add_argument("--no-pvc-from-snapshot", action="store_true", help="do not restore PVCs from VolumeSnapshots")
    p.add_argument("--dry-run", action="store_true", help="print the plan; touch nothing")
    p.add_argument("--concurrency", type=int, default=16)


def options_from_args(args: argparse.Namespace, restore_id: str) -> Any:
    from chalicelib.core.restore_options import RestoreOptions

    return RestoreOptions.from_dict(
        {
            "namespace_mapping": [*args.namespace_mapping, *args.namespace_mappings],
            "include_namespaces": list(args.include_namespaces),
            "exclude_namespaces": list(args.exclude_namespaces),
            "include_resources": list(args.include_resources),
            "exclude_resources": list(args.exclude_resources),
            "label_selector": args.selector,
            "existing_policy": _existing_policy(args),
            "preserve_node_ports": args.preserve_node_ports,
            "restore_pvcs_from_snapshots": not args.no_pvc_from_snapshot,
            "restore_id": restore_id,
            "dry_run": args.dry_run,
        }
    )


def locate_backup(reader: Any, backup_id: str) -> Any:
    """The manifest of ``backup_id``, found in the repository itself so a replica works without the catalog."""
    from chalicelib.repository.errors import BackupNotFound

    for cluster, found in reader.list_backups():
        if found == backup_id:
            return reader.load_manifest(cluster, found)
    raise BackupNotFound(f"backup {backup_id} not found in the repository {location(reader.repo.store)}")


def _existing_policy(args: argparse.Namespace) -> str:
    velero = {"none": "skip", "update": "update"}.get(args.existing_resource_policy or "")
    if velero and args.existing and velero != args.existing:
        raise InvalidRestoreRequest(
            f"--existing {args.existing} and --existing-resource-policy {args.existing_resource_policy} disagree"
        )
    return velero or args.existing or "skip"


class InvalidRestoreRequest(CliError):
    """The restore's arguments name no backup, or contradict each other."""


def chosen_backup(args: argparse.Namespace, services: Any) -> str:
    """The backup id a ``restore create`` names: positional, ``--from-backup`` or ``--from-schedule``."""
    given = [v for v in (args.backup_id, args.from_backup) if v]
    if len(set(given)) > 1 or (given and args.from_schedule):
        raise InvalidRestoreRequest("name the backup once: BACKUP_ID, --from-backup or --from-schedule")
    if given:
        return str(given[0])
    if not args.from_schedule:
        raise InvalidRestoreRequest(
            "restore create needs a backup: BACKUP_ID, --from-backup ID or --from-schedule NAME"
        )
    return str(newest_backup_of_schedule(services, args.from_schedule).backup_id)


def newest_backup_of_schedule(services: Any, name: str) -> Any:
    """The newest Completed, undamaged backup a schedule (policy) made; a clear error when it made none."""
    from chalicelib.core.models import BackupState

    cluster = services.policy_service().get(name).policy.cluster
    catalog, token = services.catalog(), None
    while True:
        page, token = catalog.list(cluster, limit=100, next_token=token, states=[BackupState.COMPLETED])
        for record in page:
            if record.policy == name and str(record.state) == BackupState.COMPLETED and not record.damaged:
                return record
        if not token:
            raise CliError(f"schedule {name} has no completed backup of cluster {cluster} to restore")


def restore(args: argparse.Namespace, services: Any) -> int:
    from chalicelib.kube import KubeClient
    from chalicelib.repository import RepositoryReader
    from chalicelib.restore import RestoreService

    # Arguments first: a typo in an option is a usage error whether or not the backup exists.
    restore_id = f"r-cli-{uuid.uuid4().hex[:12]}"
    options = options_from_args(args, restore_id)
    backup_id = chosen_backup(args, services)
    reader = RepositoryReader(services.repository())
    manifest = locate_backup(reader, backup_id)
    client = KubeClient.from_kubeconfig(read_kubeconfig(args.kubeconfig), context=args.context)
    service = RestoreService(reader, client, concurrency=args.concurrency, region=services.settings.region)
    journal = LocalRestoreJournal.open(services, manifest, options, target=args.context)
    if args.output != "table":
        result = service.run(manifest, options)
        journal.finish(result)
        emit_json(result.to_dict())
        return _EXIT_BY_STATE.get(str(result.state), EXIT_ERROR)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(f"restoring {manifest.backup_id}", total=None)
        result = service.run(
            manifest, options, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    journal.finish(result)
    print_restore(result)
    return _EXIT_BY_STATE.get(str(result.state), EXIT_ERROR)


def print_restore(result: Any) -> None:
    out = console()
    if result.dry_run and result.plan is not None:
        plan = result.plan
        # The plan groups its items by restore level; the table shows them in the order they would be applied.
        items = [item for level in plan.get("levels", []) for item in level]
        rows = [
            [
                i.get("action"),
                i.get("reason"),
                i.get("kind"),
                i.get("namespace"),
                i.get("name"),
                ", ".join(i.get("diff") or []),
            ]
            for i in items
        ]
        out.print(
            table(
                f"Plan for {result.backup_id} (dry run: nothing was changed)",
                ["action", "reason", "type", "namespace", "name", "diff"],
                rows,
            )
        )
        out.print(f"counts: {plan.get('counts')}")
        return
    counts = result.counts()
    out.print(
        table(
            f"Restore of {result.backup_id}",
            ["", "value"],
            [["state", str(result.state)], ["restore id", result.restore_id], *[[k, v] for k, v in counts.items()]],
        )
    )
    if result.message:
        out.print(f"[red]{result.message}[/red]")
    for warning in result.warnings:
        out.print(f"[yellow]warning:[/yellow] {warning}")
    failures = result.failures
    if failures:
        out.print(
            table(
                "Failed objects",
                ["object", "reason", "message"],
                [[f.key, f.reason, f.message] for f in failures[:100]],
            )
        )


def _restore_view(record: Any) -> dict[str, Any]:
    import dataclasses

    data = dataclasses.asdict(record)
    data["state"] = str(record.state)
    return data


def restore_get(args: argparse.Namespace, services: Any) -> int:
    catalog = services.restore_catalog()
    records = [catalog.get(args.restore_id)] if args.restore_id else catalog.recent(limit=args.limit)
    if args.output != "table":
        emit_json([_restore_view(r) for r in records])
        return EXIT_OK
    rows = [
        [
            r.restore_id,
            f"{r.backup_cluster}/{r.backup_id}",
            str(r.state) + (" (dry run)" if r.dry_run else ""),
            r.target_cluster.get("name"),
            ", ".join(f"{k} {v}" for k, v in sorted(r.counts.items()) if v),
            r.created_at,
            r.finished_at,
        ]
        for r in records
    ]
    console().print(table("Restores", ["id", "backup", "state", "target", "counts", "created", "finished"], rows))
    return EXIT_OK


def restore_describe(args: argparse.Namespace, services: Any) -> int:
    record = services.restore_catalog().get(args.restore_id)
    if args.output != "table":
        emit_json(_restore_view(record))
        return EXIT_OK
    out = console()
    rows = [
        ["restore", record.restore_id],
        ["backup", f"{record.backup_cluster}/{record.backup_id}"],
        ["state", str(record.state) + (" (dry run)" if record.dry_run else "")],
        ["target", record.target_cluster.get("name")],
        ["created", record.created_at],
        ["started", record.started_at],
        ["finished", record.finished_at],
        ["objects done", f"{record.done} of {record.total if record.total is not None else '?'}"],
        *[[k, v] for k, v in sorted(record.counts.items())],
    ]
    out.print(table("Restore", ["", "value"], rows))
    options = record.options or {}
    chosen = {k: v for k, v in options.items() if v not in (None, [], "", False) and k != "restore_id"}
    out.print(table("Options", ["option", "value"], [[k, v] for k, v in sorted(chosen.items())]))
    _print_record_problems(record)
    return EXIT_OK


def restore_logs(args: argparse.Namespace, services: Any) -> int:
    record = services.restore_catalog().get(args.restore_id)
    if args.output != "table":
        emit_json(
            {
                "restore_id": record.restore_id,
                "failure": record.failure,
                "warnings": record.warnings,
                "failures": record.failures,
                "failures_total": record.failures_total,
            }
        )
        return EXIT_OK
    if not (record.failure or record.warnings or record.failures):
        console().print(f"restore {record.restore_id} ({record.state}) recorded no warnings or errors")
        return EXIT_OK
    _print_record_problems(record)
    return EXIT_OK


def _print_record_problems(record: Any) -> None:
    out = console()
    if record.failure:
        out.print(f"[red]error:[/red] {record.failure}")
    for warning in record.warnings:
        out.print(f"[yellow]warning:[/yellow] {warning}")
    for failure in record.failures:
        out.print(f"[red]error:[/red] {failure.get('key')}: {failure.get('reason')}: {failure.get('message')}")
    more = record.failures_total - len(record.failures)
    if more > 0:
        out.print(f"... and {more} more failed objects (the record keeps the first {len(record.failures)})")
