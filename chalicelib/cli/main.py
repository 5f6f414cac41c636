"""``lifeboat``: back up a cluster, inspect and export backups, check the repository."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, FORMATS, err_console


def _add_aws_options(p: argparse.ArgumentParser) -> None:
    # No defaults here: Settings.from_env fills what an option leaves out (see _services).
    p.add_argument("--table", help="DynamoDB table (env LIFEBOAT_TABLE)")
    p.add_argument("--bucket", help="repository bucket (env LIFEBOAT_BUCKET)")
    p.add_argument("--region", help="AWS region (env LIFEBOAT_REGION or AWS_REGION; default us-east-1)")
    p.add_argument(
        "--endpoint-url",
        help="emulated AWS endpoint such as a moto server (env LIFEBOAT_AWS_ENDPOINT_URL); omit for real AWS",
    )
    p.add_argument(
        "-o", "--output", choices=FORMATS, default="table", help="table for people; json or yaml for scripts"
    )


def _add_scope_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--include-namespaces", nargs="*", default=[], metavar="GLOB")
    p.add_argument("--exclude-namespaces", nargs="*", default=[], metavar="GLOB")
    p.add_argument("--include-resources", nargs="*", default=[], metavar="TYPE")
    p.add_argument("--exclude-resources", nargs="*", default=[], metavar="TYPE")
    p.add_argument("--selector", "-l", default="", help="label selector, e.g. app=web,tier!=cache")
    p.add_argument("--cluster-scoped", choices=("on", "off", "auto"), default=None)


def _data_subset(text: str) -> tuple[int, bool]:
    """``--read-data-subset``: (N, False) for N blobs, (N, True) for N percent of them."""
    percent = text.endswith("%")
    number = text[:-1] if percent else text
    if not number.isascii() or not number.isdigit() or (percent and int(number) > 100):
        raise argparse.ArgumentTypeError(f"expected a number of blobs or a percentage (0-100%), not {text!r}")
    return int(number), percent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifeboat", description="Backup and disaster recovery for Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True)

    from chalicelib.cli import velero

    velero.add_backup_parsers(sub, _add_aws_options, _add_scope_options)
    velero.add_schedule_parsers(sub, _add_aws_options, _add_scope_options)
    velero.add_completion_parser(sub)

    backups = sub.add_parser("backups", help="list and describe backups").add_subparsers(dest="action", required=True)
    p = backups.add_parser("list", help="backups, newest first")
    _add_aws_options(p)
    p.add_argument("--cluster", default=None, help="only this cluster (default: every cluster)")
    p.add_argument("--limit", type=int, default=50)
    p = backups.add_parser("describe", help="one backup: counts per kind and namespace, parent, sizes")
    _add_aws_options(p)
    p.add_argument("backup_id")
    p = backups.add_parser("logs", help="the warnings and errors recorded for one backup, per type and object")
    _add_aws_options(p)
    p.add_argument("backup_id")

    p = sub.add_parser("export", help="write a backup as plain YAML files that kubectl apply accepts")
    _add_aws_options(p)
    p.add_argument("backup_id")
    p.add_argument("--to", required=True, type=Path, dest="to_dir")
    p.add_argument(
        "--for",
        dest="export_for",
        choices=("kubectl", "gitops"),
        default="kubectl",
        help="kubectl: every object as stored; gitops: only what you would commit by hand",
    )
    p.add_argument(
        "--secrets",
        choices=("omit", "include", "sealed"),
        default=None,
        help="leave Secrets out, write them as stored, or as SealedSecrets (default: include for kubectl, omit for "
        "gitops)",
    )
    p.add_argument(
        "--sealed-secrets-cert",
        type=Path,
        default=None,
        help="the sealed-secrets controller's certificate (kubeseal --fetch-cert), for --secrets sealed",
    )
    p.add_argument("--argocd-repo", default=None, help="also write an Argo CD Application per namespace for this repo")
    p.add_argument("--argocd-path", default="", help="where the export lives in that repository (default: its root)")

    repo = sub.add_parser("repo", help="repository maintenance").add_subparsers(dest="action", required=True)
    p = repo.add_parser("check", help="every referenced blob exists and re-hashes to its name")
    _add_aws_options(p)
    reading = p.add_mutually_exclusive_group()
    reading.add_argument("--no-read-data", action="store_true", help="check the index only, do not download blobs")
    reading.add_argument(
        "--read-data-subset",
        type=_data_subset,
        default=None,
        metavar="N|N%",
        help="read only N blobs chosen at random (or N%% of the indexed blobs), and only their packs' headers",
    )

    velero.add_restore_parsers(sub, _add_aws_options)

    from chalicelib.cli.replication_cmd import add_parser as add_replication_parser

    add_replication_parser(sub, _add_aws_options)

    from chalicelib.cli.policies import add_parsers as add_policy_parsers

    add_policy_parsers(sub, _add_aws_options)

    from chalicelib.cli.api_clients import add_parsers as add_api_client_parsers

    add_api_client_parsers(sub, _add_aws_options)
    from chalicelib.cli.etcd_cmd import add_parser as add_etcd_parser

    add_etcd_parser(sub, _add_aws_options)
    from chalicelib.cli.verify_cmd import add_parsers as add_verify_parsers

    add_verify_parsers(sub, _add_aws_options)
    from chalicelib.cli.dumps_cmd import add_parsers as add_dumps_parsers

    add_dumps_parsers(sub, _add_aws_options)
    from chalicelib.cli.report_cmd import add_parser as add_report_parser

    add_report_parser(sub, _add_aws_options)
    from chalicelib.cli.cost_cmd import add_parser as add_cost_parser

    add_cost_parser(sub, _add_aws_options)

    return parser


def _services(args: argparse.Namespace) -> Any:
    import dataclasses

    from chalicelib.services import Services
    from chalicelib.settings import Settings

    settings = Settings.from_env(required=False).with_overrides(
        table=args.table,
        bucket=args.bucket,
        region=args.region,
        endpoint_url=args.endpoint_url,
        replica_bucket=getattr(args, "replica_bucket", None),
        replica_region=getattr(args, "replica_region", None),
        replica_kms_key_id=getattr(args, "replica_kms_key_id", None),
    )
    # restore and export read the repository alone, so they work against a replica bucket when the primary
    # region (and its table) is gone.
    needs_table = not (args.command == "restore" and args.action == "create" and not args.from_schedule)
    required = [("--bucket", settings.bucket)] + ([("--table", settings.table)] if needs_table else [])
    missing = [flag for flag, value in required if not value]
    if missing:
        raise _UsageError(f"missing {' and '.join(missing)} (or LIFEBOAT_TABLE / LIFEBOAT_BUCKET)")
    # The CLI works in its own process: no queue (a backup is one-shot, a restore runs here), no webhook secret,
    # and no KMS key of its own (S3 applies the bucket's default encryption).
    return Services(dataclasses.replace(settings, backup_queue_url=None, restore_queue_url=None, kms_key_id=None))


class _UsageError(Exception):
    """Arguments are missing or contradict each other."""


def _usage_errors() -> tuple[type[Exception], ...]:
    """Errors that mean the command-line arguments are wrong (exit 2, as the README says), not that the work failed.

    A policy file that does not validate is its content, not the command line: it stays an error (exit 1).
    """
    from chalicelib.api.clients import InvalidClient
    from chalicelib.api.grants import InvalidGrant
    from chalicelib.core.errors import InvalidScope, InvalidSelector
    from chalicelib.core.jobs import InvalidJob
    from chalicelib.core.restore_options import InvalidRestoreOptions
    from chalicelib.scheduling.errors import InvalidClusterAuth

    return (
        _UsageError,
        InvalidGrant,
        InvalidClient,
        InvalidSelector,
        InvalidScope,
        InvalidJob,
        InvalidRestoreOptions,
        InvalidClusterAuth,
    )


def _sentence(exc: Exception) -> str:
    """One line naming what failed and where: our own errors already say it; anything else keeps its type."""
    from rich.markup import escape

    from chalicelib.api.clients import InvalidClient
    from chalicelib.api.errors import ApiError
    from chalicelib.api.grants import InvalidGrant
    from chalicelib.catalog.errors import CatalogError
    from chalicelib.cli.output import CliError
    from chalicelib.core.errors import CoreError
    from chalicelib.kube.errors import KubeError
    from chalicelib.repository.errors import RepositoryError
    from chalicelib.scheduling.errors import SchedulingError

    ours = (
        CliError,
        _UsageError,
        ApiError,
        InvalidGrant,
        InvalidClient,
        CoreError,
        CatalogError,
        KubeError,
        RepositoryError,
        SchedulingError,
    )
    text = str(exc) if isinstance(exc, ours) else f"{type(exc).__name__}: {exc}"
    return escape(" ".join(text.split()))


def main(argv: Sequence[str] | None = None) -> int:
    from chalicelib.cli.output import set_data_format
    from chalicelib.cli.velero import completion, normalize_argv

    parser = build_parser()
    args = parser.parse_args(normalize_argv(sys.argv[1:] if argv is None else argv))
    if args.command == "completion":
        sys.stdout.write(completion(parser, args.shell))
        return EXIT_OK
    set_data_format(getattr(args, "output", "table"))
    from chalicelib.observability import log_to_stderr

    log_to_stderr()
    from chalicelib.cli import commands, replication_cmd

    handlers = {
        ("backups", "list"): commands.backups_list,
        ("backups", "describe"): commands.backups_describe,
        ("backups", "logs"): commands.backup_logs,
        ("export", None): commands.export,
        ("repo", "check"): commands.repo_check,
        ("replication", "status"): replication_cmd.status,
        ("replication", "copies"): replication_cmd.copies,
        ("replication", "reconcile"): replication_cmd.reconcile,
    }
    from chalicelib.cli.policies import HANDLERS as policy_handlers

    handlers.update(policy_handlers)
    from chalicelib.cli.api_clients import HANDLERS as api_client_handlers

    handlers.update(api_client_handlers)
    from chalicelib.cli.etcd_cmd import HANDLERS as etcd_handlers

    handlers.update(etcd_handlers)
    from chalicelib.cli.verify_cmd import HANDLERS as verify_handlers

    handlers.update(verify_handlers)
    from chalicelib.cli.dumps_cmd import HANDLERS as dumps_handlers

    handlers.update(dumps_handlers)
    from chalicelib.cli.report_cmd import HANDLERS as report_handlers

    handlers.update(report_handlers)
    from chalicelib.cli.cost_cmd import HANDLERS as cost_handlers

    handlers.update(cost_handlers)
    from chalicelib.cli.velero import handlers as velero_handlers

    handlers.update(velero_handlers())
    handler = handlers[(args.command, getattr(args, "action", None))]
    try:
        lazy = getattr(args, "lazy_services", False)
        services = _services(args) if hasattr(args, "table") and not lazy else None
        return int(handler(args, services))
    except KeyboardInterrupt:
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 -- every failure reaches the user as one clear line and a trustworthy exit code
        err_console().print(f"[red]error:[/red] {_sentence(exc)}", markup=True, highlight=False)
        return EXIT_USAGE if isinstance(exc, _usage_errors()) else EXIT_ERROR


__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
