"""The README's main job: back up the sample application, change it, back it up again, show what it cost."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, console, emit_json, human_bytes, table
from chalicelib.core.jobs import BackupJob, ClusterRef
from sandbox.environment import Sandbox, running_sandbox

CLUSTER = "sandbox"


def _job(sandbox: Sandbox) -> BackupJob:
    auth = {"type": "kubeconfig", "kubeconfig": sandbox.kubeconfig_path.read_text()}
    return BackupJob(job_id=f"sandbox-{uuid.uuid4()}", cluster=ClusterRef(CLUSTER, auth))


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

    backup_service = services.backup_service()
    full = backup_service.run(_job(sandbox)).record
    say(f"full backup {full.backup_id}: {full.state}")
    changes = mutate_sample_app(client)
    say("changed: " + "; ".join(changes))
    incremental = backup_service.run(_job(sandbox)).record
    say(f"incremental backup {incremental.backup_id}: {incremental.state} (parent {incremental.parent})")
    report = check_repository(RepositoryReader(services.repository()), read_data=True)
    restores = _webhook_restores(sandbox, incremental.backup_id, seeded.namespaces[0], say=say)
    return {
        "backups": [_row("full", full), _row("incremental", incremental)],
        "changes": changes,
        "repo_check": {
            "manifests": report.manifests_checked,
            "blobs": report.blobs_checked,
            "problems": len(report.problems),
        },
        "restores": restores,
        "ok": all(r.state == "Completed" for r in (full, incremental))
        and not report.problems
        and all(r["state"] == "Completed" for r in restores.values()),
    }


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
