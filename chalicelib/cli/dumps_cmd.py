"""``lifeboat dumps restore``: restore one database dump of a backup into a database in the cluster, by a Job."""

from __future__ import annotations

import argparse
import time
from typing import Any

from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, CliError, console, emit_json

POLL_S = 2.0
URL_MARGIN_S = 300  # the URL outlives the wait a little: a download started at the end still completes


def add_parsers(sub: Any, add_aws_options: Any) -> None:
    dumps = sub.add_parser("dumps", help="database dumps taken with backups").add_subparsers(
        dest="action", required=True
    )
    p = dumps.add_parser(
        "restore",
        help="restore a backup's database dump into a database in the cluster",
        description="Runs the engine's restore tool (pg_restore, mysql, mongorestore) in a Job in NAMESPACE that reads "
        "the dump through a presigned URL and writes into the Service TARGET; waits for it, deletes it, and exits 0 "
        "when it succeeded, 1 when not. Credentials come from a Secret in NAMESPACE by reference: --secret, or the "
        "dump's own credentials in the backup's policy.",
    )
    add_aws_options(p)
    p.add_argument("backup_id")
    p.add_argument("dump", help="the dump's name as the backup's manifest records it (or NAMESPACE/NAME)")
    p.add_argument("--into", required=True, help="NAMESPACE/TARGET: the Service of the database to restore into")
    p.add_argument("--database", default="", help="the database to restore into (default: the dump's)")
    p.add_argument("--secret", default="", help="the Secret in NAMESPACE with the target's credentials")
    p.add_argument("--password-key", default="password", help="the password's key in --secret (default password)")
    p.add_argument("--user", default="", help="the user to connect as (default: the dump's, or the engine's admin)")
    p.add_argument("--user-key", default="", help="the user's key in --secret, instead of --user")
    p.add_argument("--cluster", default=None, help="the registered cluster to restore in (default: the backup's)")
    p.add_argument("--wait-seconds", type=int, default=3600, help="how long to wait for the Job (default 3600)")


def _into(value: str) -> tuple[str, str]:
    namespace, _, target = value.partition("/")
    if not namespace or not target or "/" in target:
        raise CliError(f"--into must be NAMESPACE/TARGET (a Service in a namespace); got {value!r}")
    return namespace, target


def _dump_record(manifest: Any, wanted: str) -> dict[str, Any]:
    dumps = list(manifest.dumps or ())
    namespace, _, name = wanted.rpartition("/")
    found = [d for d in dumps if d["name"] == name and (not namespace or d["namespace"] == namespace)]
    if not found:
        known = ", ".join(f"{d['namespace']}/{d['name']}" for d in dumps) or "none"
        raise CliError(f"backup {manifest.backup_id} has no dump {wanted!r} (its dumps: {known})")
    if len(found) > 1:
        both = ", ".join(f"{d['namespace']}/{d['name']}" for d in found)
        raise CliError(f"backup {manifest.backup_id} has dumps {both}; name one as NAMESPACE/NAME")
    record: dict[str, Any] = found[0]
    if record.get("state") != "completed":
        raise CliError(
            f"dump {record['namespace']}/{record['name']} of backup {manifest.backup_id} failed when it was taken, so "
            f"there is nothing to restore: {record.get('error', '')}"
        )
    return record


def _spec(services: Any, manifest: Any, record: dict[str, Any]) -> Any:
    """The dump's spec in the backup's policy (its image, database and credentials), or one from the record alone."""
    from chalicelib.core.dumps import DumpSpec

    policy = services.policy_catalog().find(manifest.cluster, manifest.policy) if manifest.policy else None
    for spec in policy.policy.dumps if policy is not None else ():
        if spec.name == record["name"] and spec.namespace == record["namespace"] and spec.engine == record["engine"]:
            return spec
    return DumpSpec(name=record["name"], engine=record["engine"], namespace=record["namespace"])


def restore(args: argparse.Namespace, services: Any) -> int:
    from chalicelib.core.dump_restore_job import RestoreTarget, restore_database
    from chalicelib.core.dumps import Credentials
    from chalicelib.repository import RepositoryReader
    from chalicelib.repository.presigned import presigned_get
    from chalicelib.repository.repo import MANIFEST_NAME
    from chalicelib.snapshots.dump_jobs import RUNNING, SUCCEEDED
    from chalicelib.snapshots.dump_restores import DumpRestores

    namespace, service = _into(args.into)
    if args.user and args.user_key:
        raise CliError("give --user or --user-key, not both")
    if args.wait_seconds <= 0:
        raise CliError(f"--wait-seconds must be a positive number of seconds; got {args.wait_seconds}")
    backup = services.catalog().find(args.backup_id)
    repo = services.repository()
    manifest = RepositoryReader(repo).load_manifest(backup.cluster, args.backup_id)
    record = _dump_record(manifest, args.dump)
    spec = _spec(services, manifest, record)
    credentials = Credentials(args.secret, args.password_key, args.user_key, args.user) if args.secret else None
    target = RestoreTarget(namespace, service, args.database, credentials)
    key = repo.manifest_key(manifest.cluster, manifest.backup_id)[: -len(MANIFEST_NAME)] + record["key"]
    url = presigned_get(repo.store, key, expires_s=args.wait_seconds + URL_MARGIN_S)
    restores = DumpRestores(services.connect_registered(args.cluster or manifest.cluster))
    job = restores.start(manifest.backup_id, spec, target, url)
    started = time.monotonic()
    try:
        state, why = restores.observe(namespace, job)
        while state == RUNNING:
            if time.monotonic() - started >= args.wait_seconds:
                why = f"the restore Job {namespace}/{job} did not finish within {args.wait_seconds}s"
                break
            time.sleep(POLL_S)
            state, why = restores.observe(namespace, job)
    finally:
        restores.delete(namespace, job)
    ok = state == SUCCEEDED
    result = {
        "backup_id": manifest.backup_id,
        "dump": f"{record['namespace']}/{record['name']}",
        "engine": record["engine"],
        "into": f"{namespace}/{service}",
        "database": restore_database(spec, target),
        "job": f"{namespace}/{job}",
        "state": "succeeded" if ok else "failed",
        "duration_s": round(time.monotonic() - started, 1),
        "error": why,
    }
    if args.output != "table":
        emit_json(result)
    elif ok:
        console().print(f"restored {result['dump']} of {manifest.backup_id} into {result['into']} ({result['job']})")
    else:
        console().print(f"[red]failed:[/red] {why}", highlight=False)
    return EXIT_OK if ok else EXIT_ERROR


HANDLERS: dict[tuple[str, str | None], Any] = {("dumps", "restore"): restore}
