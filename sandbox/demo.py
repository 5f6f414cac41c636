"""The README's main job: back up the sample application, change it, back it up again (with volume snapshots), show
what it cost, and restore it: a namespace through the webhook, a claim from its snapshot."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, console, emit_json, human_bytes, table
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.volume_snapshots import VolumeSettings
from sandbox.environment import Sandbox, running_sandbox

CLUSTER = "sandbox"


def _job(sandbox: Sandbox, volumes: VolumeSettings | None = None) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": sandbox.kubeconfig_path.read_text()}
    return BackupJob(
        job_id=f"sandbox-{uuid.uuid4()}", cluster=ClusterRef(CLUSTER, auth), volumes=volumes or VolumeSettings()
    )


class _Queue:
    """The backup queue in process: a backup waiting for its snapshots continues from here."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any], *, delay_s: int = 0) -> None:
        self.messages.append(message)

    def send_many(self, messages: Any) -> int:
        batch = list(messages)
        self.messages.extend(batch)
        return len(batch)

    def drain(self, service: Any) -> None:
        from chalicelib.backup.worker import handle_message

        for _ in range(600):
            if not self.messages:
                return
            time.sleep(0.1)  # the simulated snapshotter takes its time, as a storage system does
            handle_message(service, self.messages.pop(0))
        raise RuntimeError("the backup queue never drained")


def _row(label: str, record: Any) -> dict[str, Any]:
    counts, stats = record.counts or {}, record.stats or {}
    return {
        "backup": label,
        "backup_id": record.backup_id,
        "state": str(record.state),
        "objects": counts.get("objects", 0),
        "new_blobs": counts.get("blobs_new", 0),
        "bytes_uploaded": stats.get("bytes_uploaded", 0),
        "bytes_deduplicated": stats.get("bytes_deduplicated", 0),
        "duration_s": round(stats.get("duration_ms", 0) / 1000, 3),
        "errors": record.errors,
    }


def run_flow(sandbox: Sandbox, *, say: Any) -> dict[str, Any]:
    """Seed, full backup, mutate, incremental backup, check the repository; returns a report."""
    from chalicelib.kube import KubeClient
    from chalicelib.repository import RepositoryReader
    from chalicelib.repository.check import check_repository
    from chalicelib.services import Services
    from sandbox.sample_app import mutate_sample_app, seed_sample_app

    services = Services(sandbox.settings())
    client = KubeClient.from_kubeconfig(sandbox.kubeconfig_path.read_text())
    seeded = seed_sample_app(client)
    say(f"seeded the sample application: {seeded.objects} objects in namespaces {', '.join(seeded.namespaces)}")

    queue = _Queue()
    backup_service = services.backup_service(queue=queue)
    full = backup_service.run(_job(sandbox)).record
    say(f"full backup {full.backup_id}: {full.state}")
    changes = mutate_sample_app(client)
    say("changed: " + "; ".join(changes))
    # The second backup also snapshots the claims (after listing, so the two backups hold the same objects).
    incremental = backup_service.run(_job(sandbox, VolumeSettings(mode="auto"))).record
    queue.drain(backup_service)
    incremental = services.catalog().get(CLUSTER, incremental.backup_id)
    say(f"incremental backup {incremental.backup_id}: {incremental.state} (parent {incremental.parent})")
    reader = RepositoryReader(services.repository())
    report = check_repository(reader, read_data=True)
    restores = _webhook_restores(sandbox, incremental.backup_id, seeded.namespaces[0], say=say)
    volumes = _volume_restore(client, reader, reader.load_manifest(CLUSTER, incremental.backup_id), say=say)
    return {
        "backups": [_row("full", full), _row("incremental", incremental)],
        "volumes": volumes,
        "changes": changes,
        "repo_check": {
            "manifests": report.manifests_checked,
            "blobs": report.blobs_checked,
            "problems": len(report.problems),
        },
        "restores": restores,
        "ok": all(r.state == "Completed" for r in (full, incremental))
        and not report.problems
        and all(r["state"] == "Completed" for r in restores.values())
        and volumes["restore"] == "Completed",
    }


def _volume_restore(client: Any, reader: Any, manifest: Any, *, say: Any) -> dict[str, Any]:
    """Every claim's snapshot record, and the namespace holding a snapshotted claim restored into a new one."""
    from chalicelib.core.restore_options import RestoreOptions
    from chalicelib.restore import RestoreService

    records = list(manifest.volume_snapshots)
    for r in records:
        say(f"volume {r['namespace']}/{r['pvc']}: {r['state']} {r.get('snapshot_handle') or r.get('reason', '')}")
    source = next((r["namespace"] for r in records if r["state"] == "ready"), None)
    if source is None:
        return {"snapshots": records, "restore": "nothing to restore"}
    target = f"{source}-restored"
    options = RestoreOptions(namespace_mapping={source: target}, include_namespaces=(source,))
    result = RestoreService(reader, client).run(manifest, options)
    say(f"restore of {source} into {target}, claims from their snapshots: {result.state}")
    return {"snapshots": records, "restore": str(result.state), "namespace": target}


def _webhook_restores(sandbox: Sandbox, backup_id: str, source_ns: str, *, say: Any) -> dict[str, Any]:
    """A signed dry run, then the real restore of ``source_ns`` into a new namespace, through the webhook."""
    from chalicelib.services import Services
    from sandbox.webhook_demo import provision_webhook, serving_app, webhook_restore

    settings, secret = provision_webhook(sandbox)
    services = Services(settings)
    target_ns = f"{source_ns}-restored"
    with serving_app(services) as base_url:
        say(f"webhook API at {base_url}: signed restore of {source_ns} into {target_ns}")
        plan = webhook_restore(
            services, secret, base_url, backup_id, source_ns=source_ns, target_ns=target_ns, dry_run=True
        )
        say(f"dry run {plan['restore_id']}: {plan['state']}")
        result = webhook_restore(
            services, secret, base_url, backup_id, source_ns=source_ns, target_ns=target_ns, dry_run=False
        )
        say(f"restore {result['restore_id']}: {result['state']}")
    return {"dry_run": plan, "restore": result}


def run_demo(*, keep: bool = False, output: str = "table") -> int:
    import os

    # Structured logs are for CloudWatch; the demo prints its own summary.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    out = console()
    say = (lambda msg: out.print(f"[dim]·[/dim] {msg}")) if output == "table" else (lambda msg: None)
    workdir = Path(tempfile.mkdtemp(prefix="lifeboat-sandbox-"))
    started = time.monotonic()
    with running_sandbox(workdir) as sandbox:
        say(f"emulated AWS at {sandbox.aws_endpoint}, Kubernetes API at {sandbox.kube.url}")
        result = run_flow(sandbox, say=say)
        result["duration_s"] = round(time.monotonic() - started, 2)
        if output == "json":
            emit_json(result)
        else:
            rows = [
                [
                    b["backup"],
                    b["state"],
                    b["objects"],
                    b["new_blobs"],
                    human_bytes(b["bytes_uploaded"]),
                    human_bytes(b["bytes_deduplicated"]),
                    f"{b['duration_s']:.2f} s",
                ]
                for b in result["backups"]
            ]
            out.print(
                table(
                    "Lifeboat sandbox",
                    ["backup", "state", "objects", "new blobs", "uploaded", "deduplicated", "duration"],
                    rows,
                )
            )
            _print_restores(out, result["restores"])
            volume_rows = [
                [v["namespace"], v["pvc"], v["state"], v.get("snapshot_handle") or v.get("reason", "")]
                for v in result["volumes"]["snapshots"]
            ]
            out.print(
                table("Volume snapshots of the incremental backup", ["namespace", "claim", "state", ""], volume_rows)
            )
            check = result["repo_check"]
            out.print(
                f"repository check: {check['manifests']} manifests, {check['blobs']} blobs, "
                f"{check['problems']} problems"
            )
        if keep:
            out.print("sandbox running; in another shell:")
            for key, value in sandbox.env().items():
                out.print(f"  export {key}={value}")
            out.print("press Ctrl-C to stop")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return EXIT_OK if result["ok"] else EXIT_ERROR


def _print_restores(out: Any, restores: dict[str, Any]) -> None:
    plan = restores["dry_run"].get("plan") or {}
    items = plan.get("items") or []
    rows = [[i.get("action"), i.get("reason"), i.get("kind"), i.get("namespace"), i.get("name")] for i in items]
    out.print(
        table("Webhook dry run: the plan (nothing changed)", ["action", "reason", "kind", "namespace", "name"], rows)
    )
    done = restores["restore"]
    counts = done.get("counts") or {}
    out.print(
        table(
            "Webhook restore: the result",
            ["", "value"],
            [
                ["state", done.get("state")],
                ["restore id", done.get("restore_id")],
                *[[k, v] for k, v in counts.items()],
                ["failures", len(done.get("failures") or [])],
            ],
        )
    )
