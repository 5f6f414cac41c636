"""``lifeboat restore``: restore a backup into the cluster of a kubeconfig context, or show the plan."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from chalicelib.cli.output import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    console,
    emit_json,
    location,
    read_kubeconfig,
    table,
)
from chalicelib.settings import default_kubeconfig

_EXIT_BY_STATE = {"Completed": EXIT_OK, "PartiallyFailed": EXIT_PARTIAL}


def add_parser(sub: Any, add_aws_options: Any) -> None:
    p = sub.add_parser("restore", help="restore a backup (or show its plan with --dry-run)")
    add_aws_options(p)
    p.add_argument("backup_id")
    p.add_argument("--kubeconfig", default=default_kubeconfig())
    p.add_argument("--context", default=None, help="kubeconfig context of the target cluster")
    p.add_argument("--namespace-mapping", nargs="*", default=[], metavar="FROM:TO")
    p.add_argument("--include-namespaces", nargs="*", default=[], metavar="GLOB")
    p.add_argument("--exclude-namespaces", nargs="*", default=[], metavar="GLOB")
    p.add_argument("--include-resources", nargs="*", default=[], metavar="TYPE")
    p.add_argument("--exclude-resources", nargs="*", default=[], metavar="TYPE")
    p.add_argument("--selector", "-l", default="", help="only objects with these labels")
    p.add_argument("--existing", choices=("skip", "update"), default="skip", help="what to do with existing objects")
    p.add_argument("--preserve-node-ports", action="store_true")
    p.add_argument("--no-pvc-from-snapshot", action="store_true", help="do not restore PVCs from VolumeSnapshots")
    p.add_argument("--dry-run", action="store_true", help="print the plan; touch nothing")
    p.add_argument("--concurrency", type=int, default=16)


def options_from_args(args: argparse.Namespace, restore_id: str) -> Any:
    from chalicelib.core.restore_options import RestoreOptions

    return RestoreOptions.from_dict(
        {
            "namespace_mapping": list(args.namespace_mapping),
            "include_namespaces": list(args.include_namespaces),
            "exclude_namespaces": list(args.exclude_namespaces),
            "include_resources": list(args.include_resources),
            "exclude_resources": list(args.exclude_resources),
            "label_selector": args.selector,
            "existing_policy": args.existing,
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


def restore(args: argparse.Namespace, services: Any) -> int:
    from chalicelib.kube import KubeClient
    from chalicelib.repository import RepositoryReader
    from chalicelib.restore import RestoreService

    # Arguments first: a typo in an option is a usage error whether or not the backup exists.
    restore_id = f"r-cli-{uuid.uuid4().hex[:12]}"
    options = options_from_args(args, restore_id)
    reader = RepositoryReader(services.repository())
    manifest = locate_backup(reader, args.backup_id)
    client = KubeClient.from_kubeconfig(read_kubeconfig(args.kubeconfig), context=args.context)
    service = RestoreService(reader, client, concurrency=args.concurrency, region=services.settings.region)
    if args.output == "json":
        result = service.run(manifest, options)
        emit_json(result.to_dict())
        return _EXIT_BY_STATE.get(str(result.state), EXIT_ERROR)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(f"restoring {manifest.backup_id}", total=None)
        result = service.run(
            manifest, options, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
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
