"""Velero's verbs: ``backup create|get|describe|logs|delete|download``, ``schedule ...`` and ``restore create|get|...``.

A schedule is a policy, so ``schedule`` writes the same policy a policy file would. The older spellings keep
working: ``lifeboat backup --kubeconfig ...`` is ``backup create`` and ``lifeboat restore ID`` is ``restore
create ID`` (``normalize_argv``); ``backups list|describe`` and ``policies ...`` stay as they were.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from typing import Any

BACKUP_VERBS = ("create", "get", "describe", "logs", "delete", "download")
RESTORE_VERBS = ("create", "get", "describe", "logs")
SCHEDULE_VERBS = ("create", "get", "describe", "pause", "unpause", "delete")
_HELP = ("-h", "--help")

AddOptions = Callable[[argparse.ArgumentParser], None]


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """The older ``backup [options]`` and ``restore BACKUP_ID [options]`` forms, spelled with ``create``."""
    args = list(argv)
    if len(args) >= 1 and args[0] == "backup" and (len(args) == 1 or args[1] not in (*BACKUP_VERBS, *_HELP)):
        args.insert(1, "create")
    if len(args) >= 2 and args[0] == "restore" and args[1] not in (*RESTORE_VERBS, *_HELP):
        args.insert(1, "create")
    return args


def ttl_seconds(text: str) -> int:
    """A Go duration as Velero takes it (``720h``, ``720h0m0s``, ``90m``): seconds, at least one."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not text.strip() or parts is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 720h or 36h30m, not {text!r}")
    hours, minutes, seconds = (int(p or 0) for p in parts.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise argparse.ArgumentTypeError(f"a --ttl must be longer than zero, not {text!r}")
    return total


def namespace_mappings(text: str) -> list[str]:
    """Velero's ``--namespace-mappings a:b,c:d``: the restore engine's ``FROM:TO`` pairs."""
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in pairs if p.count(":") != 1 or p.startswith(":") or p.endswith(":")]
    if bad:
        raise argparse.ArgumentTypeError(f"expected FROM:TO pairs separated by commas, not {bad[0]!r}")
    return pairs


def add_backup_parsers(sub: Any, add_aws_options: AddOptions, add_scope_options: AddOptions) -> None:
    from chalicelib.settings import default_kubeconfig

    verbs = sub.add_parser("backup", help="back up a cluster now, and read, download or delete backups")
    backup = verbs.add_subparsers(dest="action", required=True)
    p = backup.add_parser("create", help="back up a cluster now (a registered one, or a kubeconfig context)")
    add_aws_options(p)
    p.add_argument(
        "--kubeconfig",
        default=None,
        help=f"kubeconfig (default: a registered cluster's own credentials, else {default_kubeconfig()})",
    )
    p.add_argument("--context", default=None, help="kubeconfig context (default: current-context)")
    p.add_argument("--cluster", default=None, help="cluster name: a registered cluster, or the repository's name")
    p.add_argument("--policy", default=None)
    p.add_argument("--from-schedule", default=None, metavar="NAME", help="a backup now with that schedule's scope")
    p.add_argument("--wait", action="store_true", help="accepted for Velero's habits: a CLI backup always waits")
    add_scope_options(p)

    p = backup.add_parser("get", help="backups, newest first (or one)")
    add_aws_options(p)
    p.add_argument("backup_id", nargs="?")
    p.add_argument("--cluster", default=None, help="only this cluster (default: every cluster)")
    p.add_argument("--limit", type=int, default=50)
    p = backup.add_parser("describe", help="one backup: counts per kind and namespace, parent, sizes")
    add_aws_options(p)
    p.add_argument("backup_id")
    p.add_argument("--details", action="store_true", help="also list every object the backup holds")
    p = backup.add_parser("logs", help="the warnings and errors recorded for a backup")
    add_aws_options(p)
    p.add_argument("backup_id")
    p = backup.add_parser("delete", help="delete a backup now (its data goes at the next garbage collection)")
    add_aws_options(p)
    p.add_argument("backup_id")
    p.add_argument("--confirm", action="store_true", help="do not ask; required when not on a terminal")
    p = backup.add_parser("download", help="a backup's objects as a .tar.gz of YAML files")
    add_aws_options(p)
    p.add_argument("backup_id")
    p.add_argument("--to", dest="to_file", default=None, help="file to write (default: BACKUP_ID-data.tar.gz)")


def add_restore_parsers(sub: Any, add_aws_options: AddOptions) -> None:
    from chalicelib.cli.restore_cmd import add_create_options

    restore = sub.add_parser("restore", help="restore a backup, and read restores").add_subparsers(
        dest="action", required=True
    )
    p = restore.add_parser("create", help="restore a backup (or show its plan with --dry-run)")
    add_aws_options(p)
    p.add_argument("backup_id", nargs="?", help="the backup (or use --from-backup / --from-schedule)")
    p.add_argument("--from-backup", default=None, metavar="ID")
    p.add_argument("--from-schedule", default=None, metavar="NAME", help="the schedule's newest completed backup")
    p.add_argument("--wait", action="store_true", help="accepted for Velero's habits: a CLI restore always waits")
    add_create_options(p)
    p = restore.add_parser("get", help="restores, newest first (or one)")
    add_aws_options(p)
    p.add_argument("restore_id", nargs="?")
    p.add_argument("--limit", type=int, default=50)
    for action, text in (("describe", "one restore: state, counts, failures"), ("logs", "a restore's failures")):
        p = restore.add_parser(action, help=text)
        add_aws_options(p)
        p.add_argument("restore_id")


def add_schedule_parsers(sub: Any, add_aws_options: AddOptions, add_scope_options: AddOptions) -> None:
    schedule = sub.add_parser("schedule", help="schedules (a schedule is a policy)").add_subparsers(
        dest="action", required=True
    )
    p = schedule.add_parser("create", help="create or replace a schedule")
    add_aws_options(p)
    p.add_argument("name")
    p.add_argument("--schedule", required=True, help='cron expression, e.g. "0 * * * *"')
    p.add_argument("--cluster", required=True, help="the registered cluster it backs up")
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--ttl", type=ttl_seconds, default=None, help="keep backups this long (e.g. 720h)")
    p.add_argument("--paused", action="store_true", help="create it paused")
    add_scope_options(p)
    p = schedule.add_parser("get", help="every schedule (or one)")
    add_aws_options(p)
    p.add_argument("name", nargs="?")
    for action, text in (
        ("describe", "one schedule and its recent runs"),
        ("pause", "stop running a schedule (its backups stay)"),
        ("unpause", "run a paused schedule again"),
        ("delete", "delete a schedule (its backups stay)"),
    ):
        p = schedule.add_parser(action, help=text)
        add_aws_options(p)
        p.add_argument("name")


def add_completion_parser(sub: Any) -> None:
    p = sub.add_parser("completion", help="shell completion: source <(lifeboat completion bash)")
    p.add_argument("shell", choices=("bash", "zsh"))


def handlers() -> dict[tuple[str, str | None], Callable[[Any, Any], int]]:
    from chalicelib.cli import commands, restore_cmd, schedule_cmd

    return {
        ("backup", "create"): commands.backup,
        ("backup", "get"): commands.backup_get,
        ("backup", "describe"): commands.backups_describe,
        ("backup", "logs"): commands.backup_logs,
        ("backup", "delete"): commands.backup_delete,
        ("backup", "download"): commands.backup_download,
        ("restore", "create"): restore_cmd.restore,
        ("restore", "get"): restore_cmd.restore_get,
        ("restore", "describe"): restore_cmd.restore_describe,
        ("restore", "logs"): restore_cmd.restore_logs,
        ("schedule", "create"): schedule_cmd.create,
        ("schedule", "get"): schedule_cmd.get,
        ("schedule", "describe"): schedule_cmd.describe,
        ("schedule", "pause"): schedule_cmd.pause,
        ("schedule", "unpause"): schedule_cmd.unpause,
        ("schedule", "delete"): schedule_cmd.delete,
    }


def completion(parser: argparse.ArgumentParser, shell: str) -> str:
    """A completion script generated from the parser itself, so it never lags behind the commands."""
    import shtab

    return str(shtab.complete(parser, shell=shell))
