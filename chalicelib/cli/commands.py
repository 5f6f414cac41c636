"""The CLI's commands: each takes parsed arguments and the composition root and returns an exit code."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from chalicelib.cli.output import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    CliError,
    console,
    emit_json,
    err_console,
    human_bytes,
    read_kubeconfig,
    table,
)
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.scope import BackupScope

_EXIT_BY_STATE = {"Completed": EXIT_OK, "PartiallyFailed": EXIT_PARTIAL}


def _record_dict(record: Any) -> dict[str, Any]:
    import dataclasses

    data = dataclasses.asdict(record)
    data["state"] = str(record.state)
    return data


def scope_from_args(args: Any) -> BackupScope:
    return BackupScope(
        include_namespaces=tuple(args.include_namespaces),
        exclude_namespaces=tuple(args.exclude_namespaces),
        include_resources=tuple(args.include_resources),
        exclude_resources=tuple(args.exclude_resources),
        label_selector=args.selector,
        cluster_scoped=args.cluster_scoped,
    )


def _current_context(kubeconfig: str) -> str | None:
    import yaml

    try:
        doc = yaml.safe_load(kubeconfig) or {}
    except yaml.YAMLError:
        return None  # the loader reports malformed kubeconfigs with a precise message
    return doc.get("current-context") if isinstance(doc, dict) else None


def run_backup_with_progress(services: Any, job: BackupJob, *, show: bool = True) -> Any:
    """Run ``job`` with a live counter on the terminal; returns the BackupOutcome."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    service = services.backup_service()
    if not show:
        return service.run(job)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(f"backing up {job.cluster.name}", total=None)

        def progress(objects: int, resource: str) -> None:
            bar.update(task, description=f"backing up {job.cluster.name}: {objects} objects ({resource})")

        return service.run(job, progress=progress)


def _backup_target(args: Any, services: Any) -> tuple[ClusterRef, BackupScope, str | None]:
    """The cluster, scope and policy of ``backup create``: a schedule's, a registered cluster's or a kubeconfig's."""
    from chalicelib.settings import default_kubeconfig

    scope, policy = scope_from_args(args), args.policy
    cluster = args.cluster
    if getattr(args, "from_schedule", None):
        record = services.policy_service().get(args.from_schedule).policy
        scope, policy = record.scope, record.name
        if cluster and cluster != record.cluster:
            raise CliError(f"schedule {record.name} backs up cluster {record.cluster}, not {cluster}")
        cluster = record.cluster
    if args.kubeconfig is None and cluster and services.settings.table:
        from chalicelib.catalog.errors import RecordNotFound

        try:
            registered = services.cluster_catalog().get(cluster)
        except RecordNotFound:
            registered = None
        if registered is not None and registered.auth is not None:
            # The credentials stay where the registration keeps them (EKS token, Secrets Manager): this process
            # fetches them the way a worker does.
            return ClusterRef(cluster, dict(registered.auth)), scope, policy
    if getattr(args, "from_schedule", None):
        raise CliError(f"cluster {cluster} of schedule {args.from_schedule} is not registered; pass --kubeconfig")
    kubeconfig = read_kubeconfig(args.kubeconfig or default_kubeconfig())
    context = args.context or _current_context(kubeconfig)
    name = cluster or context or "default"
    return ClusterRef(name, {"type": "kubeconfig", "kubeconfig": kubeconfig, "context": args.context}), scope, policy


def backup(args: Any, services: Any) -> int:
    cluster, scope, policy = _backup_target(args, services)
    # A local run does the whole backup in this process: there are no workers to hand shards to.
    job = BackupJob(job_id=f"cli-{uuid.uuid4()}", cluster=cluster, scope=scope, policy=policy, shard=False)
    outcome = run_backup_with_progress(services, job, show=args.output == "table")
    record = outcome.record
    if args.output != "table":
        emit_json(_record_dict(record))
    else:
        print_backup_summary(record)
    return _EXIT_BY_STATE.get(str(record.state), EXIT_ERROR)


def print_backup_summary(record: Any) -> None:
    out = console()
    counts, stats = record.counts or {}, record.stats or {}
    rows = [
        ["backup", record.backup_id],
        ["cluster", record.cluster],
        ["state", str(record.state)],
        ["parent", record.parent],
        ["objects", counts.get("objects", 0)],
        ["new blobs", counts.get("blobs_new", 0)],
        ["bytes uploaded", human_bytes(stats.get("bytes_uploaded", 0))],
        ["bytes deduplicated", human_bytes(stats.get("bytes_deduplicated", 0))],
        ["duration", f"{stats.get('duration_ms', 0) / 1000:.2f} s"],
    ]
    out.print(table("Backup", ["", "value"], rows))
    if record.failure:
        out.print(f"[red]failure:[/red] {record.failure}")
    for err in record.errors or []:
        out.print(f"[yellow]error:[/yellow] {err.get('resource')}: {err.get('error')}")


def backups_list(args: Any, services: Any) -> int:
    # The catalog alone would list backups of a bucket that does not exist (a typo in --bucket): open it first.
    services.repository()
    catalog = services.catalog()
    clusters = [args.cluster] if args.cluster else catalog.list_clusters()
    records = []
    for cluster in clusters:
        page, _ = catalog.list(cluster, limit=args.limit)
        records.extend(page)
    records.sort(key=lambda r: r.backup_id, reverse=True)
    records = records[: args.limit]
    if args.output != "table":
        emit_json([_record_dict(r) for r in records])
        return EXIT_OK
    rows = [
        [
            r.backup_id,
            r.cluster,
            f"{r.state} (damaged)" if r.damaged else str(r.state),
            r.parent,
            (r.counts or {}).get("objects"),
            human_bytes((r.stats or {}).get("bytes_uploaded", 0)),
            r.finished_at,
        ]
        for r in records
    ]
    console().print(table("Backups", ["id", "cluster", "state", "parent", "objects", "uploaded", "finished"], rows))
    return EXIT_OK


def _reader(services: Any) -> Any:
    from chalicelib.repository import RepositoryReader

    return RepositoryReader(services.repository())


def backups_describe(args: Any, services: Any) -> int:
    record = services.catalog().find(args.backup_id)
    reader = _reader(services)
    manifest = reader.load_manifest(record.cluster, record.backup_id)
    per_namespace: Counter[str] = Counter()
    per_kind: Counter[str] = Counter()
    size: Counter[str] = Counter()
    details = bool(getattr(args, "details", False))
    objects: list[list[str]] = []
    for scope, entry in reader.walk(manifest):
        key = scope or "(cluster)"
        if details:
            objects.append([f"{entry.group}/{entry.kind}" if entry.group else entry.kind, scope or "", entry.name])
        per_namespace[key] += 1
        per_kind[f"{entry.group}/{entry.kind}" if entry.group else entry.kind] += 1
        size[key] += entry.size
    damaged_blobs = _damaged_blobs(reader, manifest, record)
    from chalicelib.cli.volumes import HEADERS, copies_cell, copy_states, volume_rows

    recorded = manifest.volume_snapshots or []
    volumes = volume_rows(recorded, copy_states(services, record.cluster, record.backup_id, recorded))
    data = {
        "record": _record_dict(record),
        "manifest": {
            "parent": manifest.parent,
            "kubernetes_version": manifest.kubernetes_version,
            "root_tree": manifest.root_tree,
            "scope": manifest.scope,
            "counts": manifest.counts,
            "stats": manifest.stats,
            "errors": manifest.errors,
        },
        "kinds": dict(sorted(per_kind.items())),
        "namespaces": {ns: {"objects": n, "bytes": size[ns]} for ns, n in sorted(per_namespace.items())},
        "damaged_blobs": damaged_blobs,
        "volumes": volumes,
    }
    if details:
        data["objects"] = [{"kind": k, "namespace": ns, "name": n} for k, ns, n in sorted(objects)]
    if args.output != "table":
        emit_json(data)
        return EXIT_OK
    print_backup_summary(record)
    out = console()
    if record.damaged:
        out.print(
            f"[red]damaged:[/red] {record.damaged.get('count')} blob(s) found damaged or missing "
            f"at {record.damaged.get('found_at')}; a restore of this backup is refused"
        )
        for found in damaged_blobs:
            out.print(f"  {found['blob_id']}: {found['where']}")
    # Post hooks run after the commit, so their failures are on the record, not among the manifest's errors.
    for failure in record.extra.get("post_hooks") or []:
        out.print(f"[yellow]post hook failed[/yellow] at {failure.get('at')}: {failure.get('error')}")
    out.print(table("Objects per kind", ["kind", "objects"], [[k, n] for k, n in sorted(per_kind.items())]))
    out.print(
        table(
            "Objects per namespace",
            ["namespace", "objects", "size"],
            [[ns, n, human_bytes(size[ns])] for ns, n in sorted(per_namespace.items())],
        )
    )
    if volumes:
        rows = [
            [v["claim"], v["mode"], v["state"], v["snapshot"], v["size"], copies_cell(v["copies"])] for v in volumes
        ]
        out.print(table("Volumes", HEADERS, rows))
    if details:
        out.print(table("Objects", ["kind", "namespace", "name"], sorted(objects)))
    return EXIT_OK


def _damaged_blobs(reader: Any, manifest: Any, record: Any) -> list[dict[str, str]]:
    """The damaged blobs the record names, each with the first place in the backup that needs it."""
    if not record.damaged:
        return []
    from chalicelib.core.ids import BlobId
    from chalicelib.repository.reach import reachable

    reach = reachable(reader, [manifest])
    blobs = [BlobId(b) for b in record.damaged.get("blobs", [])]
    return [
        {"blob_id": str(b), "where": reach.where(b) if b in reach.first else "no longer reached by the backup"}
        for b in blobs
    ]


def export(args: Any, services: Any) -> int:
    from chalicelib.repository.export import export_backup

    record = services.catalog().find(args.backup_id)
    reader = _reader(services)
    manifest = reader.load_manifest(record.cluster, record.backup_id)
    secrets: Any = args.secrets or ("omit" if args.export_for == "gitops" else "include")
    sealing_key = None
    if secrets == "sealed":
        from chalicelib.core.sealed_secrets import load_public_key

        if args.sealed_secrets_cert is None:
            err_console().print(
                "[red]error:[/red] --secrets sealed needs --sealed-secrets-cert FILE (kubeseal --fetch-cert)"
            )
            return EXIT_USAGE
        sealing_key = load_public_key(args.sealed_secrets_cert.read_bytes())
    report = export_backup(
        reader,
        manifest,
        args.to_dir,
        for_=args.export_for,
        secrets=secrets,
        sealing_key=sealing_key,
        argocd_repo=args.argocd_repo,
        argocd_path=args.argocd_path,
    )
    if args.output != "table":
        emit_json(
            {
                "backup_id": record.backup_id,
                "to": report.directory,
                "objects": report.objects,
                "files": report.files,
                "bytes": report.bytes_written,
                "skipped": report.skipped,
            }
        )
    else:
        console().print(f"exported {report.objects} objects of {record.backup_id} to {report.directory}")
    return EXIT_OK


def _sample_size(reader: Any, subset: tuple[int, bool] | None) -> int | None:
    """How many blobs ``--read-data-subset`` reads (None: all of them); a percentage is of the indexed blobs."""
    if subset is None:
        return None
    number, percent = subset
    if not percent:
        return number
    return -(-len(reader.load_index()) * number // 100)  # rounded up: 1% of a small repository still reads a blob


def repo_check(args: Any, services: Any) -> int:
    from rich.progress import Progress

    from chalicelib.repository.check import check_repository

    reader = _reader(services)
    sample = _sample_size(reader, args.read_data_subset)
    if args.output != "table":
        report = check_repository(reader, read_data=not args.no_read_data, sample=sample)
    else:
        with Progress(transient=True) as bar:
            task = bar.add_task("checking blobs", total=None)
            report = check_repository(
                reader,
                read_data=not args.no_read_data,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                sample=sample,
            )
    problems = [dict(kind=p.kind, blob_id=p.blob_id, where=p.where, detail=p.detail) for p in report.problems]
    if args.output != "table":
        emit_json({"manifests": report.manifests_checked, "blobs": report.blobs_checked, "problems": problems})
    else:
        out = console()
        out.print(f"checked {report.manifests_checked} manifests and {report.blobs_checked} blobs")
        if problems:
            out.print(
                table(
                    "Problems",
                    ["kind", "blob", "where", "detail"],
                    [[p["kind"], p["blob_id"], p["where"], p["detail"]] for p in problems],
                )
            )
        else:
            out.print("[green]no problems found[/green]")
    return EXIT_ERROR if problems else EXIT_OK


def backup_get(args: Any, services: Any) -> int:
    """``backup get``: the list, or one backup's row."""
    if not args.backup_id:
        return backups_list(args, services)
    services.repository()
    record = services.catalog().find(args.backup_id)
    if args.output != "table":
        emit_json([_record_dict(record)])
        return EXIT_OK
    print_backup_summary(record)
    return EXIT_OK


def backup_logs(args: Any, services: Any) -> int:
    """A backup's warnings and errors: its log in the repository (written before its manifest, per resource type
    and object) and what happened after the commit (post hooks), or why it failed, from its record."""
    from chalicelib.repository.backup_log import read_log

    record = services.catalog().find(args.backup_id)
    entries: list[dict[str, str]] = []
    if record.failure:
        entries.append({"level": "error", "resource": "", "message": record.failure})
    if str(record.state) in ("Completed", "PartiallyFailed"):
        entries.extend(e.to_dict() for e in read_log(services.repository().store, record.cluster, record.backup_id))
    for failure in record.extra.get("post_hooks") or []:
        entries.append({"level": "error", "resource": "post hook", "message": str(failure.get("error", ""))})
    if args.output != "table":
        emit_json({"backup_id": record.backup_id, "state": str(record.state), "entries": entries})
        return EXIT_OK
    if not entries:
        console().print(f"backup {record.backup_id} ({record.state}) recorded no warnings or errors")
        return EXIT_OK
    rows = [
        [
            e["level"],
            e.get("resource") or "(backup)",
            "/".join(p for p in (e.get("namespace", ""), e.get("name", "")) if p),
            e["message"],
        ]
        for e in entries
    ]
    console().print(table(f"Log of {record.backup_id}", ["level", "resource", "object", "message"], rows))
    return EXIT_OK


def backup_delete(args: Any, services: Any) -> int:
    """Delete one backup now: its manifest goes, its record is marked Expired, its data goes at the next GC."""
    import sys

    from chalicelib.maintenance.retention import expire_backup

    record = services.catalog().find(args.backup_id)
    if not args.confirm:
        if not sys.stdin.isatty():
            raise CliError(f"backup delete {record.backup_id}: pass --confirm to delete without asking")
        answer = input(f"Delete backup {record.backup_id} of {record.cluster}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            console().print("nothing deleted")
            return EXIT_OK
    outcome = expire_backup(services.repository(), services.catalog(), record, by="user")
    if args.output != "table":
        emit_json({"backup_id": record.backup_id, "cluster": record.cluster, "outcome": outcome})
    elif outcome == "expired":
        console().print(f"deleted backup {record.backup_id}; its data is removed by the next garbage collection")
    else:
        console().print(f"backup {record.backup_id} not deleted: {outcome}")
    return EXIT_OK if outcome == "expired" else EXIT_ERROR


def backup_download(args: Any, services: Any) -> int:
    """A backup's objects as YAML files in a .tar.gz (what ``export`` writes, packed in one file)."""
    import os
    import tarfile
    import tempfile
    from pathlib import Path

    from chalicelib.repository.export import export_backup

    record = services.catalog().find(args.backup_id)
    reader = _reader(services)
    manifest = reader.load_manifest(record.cluster, record.backup_id)
    target = Path(args.to_file or f"{record.backup_id}-data.tar.gz")
    with tempfile.TemporaryDirectory(prefix="lifeboat-download-") as tmp:
        report = export_backup(reader, manifest, Path(tmp) / record.backup_id)
        partial = target.with_name(target.name + ".partial")
        with tarfile.open(partial, "w:gz") as archive:
            archive.add(Path(tmp) / record.backup_id, arcname=record.backup_id)
        os.replace(partial, target)  # a download that fails half-way never leaves a truncated archive behind
    if args.output != "table":
        emit_json({"backup_id": record.backup_id, "file": str(target), "objects": report.objects})
    else:
        console().print(f"downloaded {report.objects} objects of {record.backup_id} to {target}")
    return EXIT_OK
