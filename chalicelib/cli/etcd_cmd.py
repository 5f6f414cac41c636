"""``lifeboat etcd``: restore-plan (download, verify, write the per-member runbook) and verify (restore + read back)."""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path
from typing import Any

from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, console, emit_json


def add_parser(sub: Any, add_aws_options: Any) -> None:
    etcd = sub.add_parser("etcd", help="etcd snapshots of self-managed clusters")
    actions = etcd.add_subparsers(dest="action", required=True)
    p = actions.add_parser("restore-plan", help="download and verify a backup's etcd snapshot, write its runbook")
    add_aws_options(p)
    p.add_argument("backup_id")
    p.add_argument("--members", required=True, help="name=https://host:2380,... (the peer URL of every member)")
    p.add_argument("--to", type=Path, default=None, dest="to_dir", help="directory (default ./etcd-restore-<id>)")
    p.add_argument("--cluster-token", default=None, help="new --initial-cluster-token (default: a fresh one)")
    p.add_argument("--data-dir", default="/var/lib/etcd")
    p.add_argument("--snapshot-path", default="/var/lib/etcd-restore/etcd.db", help="where members will hold it")
    p.add_argument("--owner", default="etcd:etcd", help="user:group owning the data directory")
    p.add_argument("--control-plane", choices=("kubeadm", "systemd"), default="kubeadm")
    p.add_argument("--etcd-version", default=None, help="the version restoring (default: the snapshot's)")
    p = actions.add_parser("verify", help="restore a backup's etcd snapshot with etcdutl and read it back")
    add_aws_options(p)
    p.add_argument("backup_id")
    p.add_argument("--etcd-bin", default=None, help="directory with etcd and etcdutl (default: PATH)")


def _manifest(services: Any, backup_id: str) -> Any:
    from chalicelib.repository import RepositoryReader

    record = services.catalog().find(backup_id)
    return RepositoryReader(services.repository()).load_manifest(record.cluster, backup_id)


def restore_plan(args: argparse.Namespace, services: Any) -> int:
    from chalicelib.core.etcd_runbook import RunbookFacts, member_script, parse_members, readme
    from chalicelib.snapshots.etcd_verify import download_snapshot

    members = parse_members(args.members)
    manifest = _manifest(services, args.backup_id)
    out_dir: Path = args.to_dir or Path(f"etcd-restore-{args.backup_id}")
    out_dir.mkdir(parents=True, exist_ok=True)
    snap = download_snapshot(services.store(), manifest, out_dir / "etcd.db")
    facts = RunbookFacts(
        cluster=manifest.cluster,
        backup_id=manifest.backup_id,
        etcd_version=args.etcd_version or snap.version,
        revision=snap.revision,
        sha256=snap.sha256,
        members=members,
        cluster_token=args.cluster_token or f"lifeboat-{secrets.token_hex(4)}",
        data_dir=args.data_dir,
        snapshot_path=args.snapshot_path,
        owner=args.owner,
        control_plane=args.control_plane,
    )
    scripts = []
    for member in members:
        path = out_dir / f"restore-{member.name}.sh"
        path.write_text(member_script(facts, member))
        path.chmod(0o755)
        scripts.append(str(path))
    (out_dir / "README.md").write_text(readme(facts))
    summary = {
        "backup_id": manifest.backup_id,
        "cluster": manifest.cluster,
        "snapshot": str(out_dir / "etcd.db"),
        "sha256": snap.sha256,
        "revision": snap.revision,
        "etcd_version": facts.etcd_version,
        "cluster_token": facts.cluster_token,
        "scripts": scripts,
    }
    if args.output != "table":
        emit_json(summary)
    else:
        console().print(f"snapshot verified: {summary['snapshot']} (sha256 {snap.sha256})")
        for script in scripts:
            console().print(f"  {script}")
        console().print(f"read {out_dir / 'README.md'} for the order")
    return EXIT_OK


def verify(args: argparse.Namespace, services: Any) -> int:
    from dataclasses import asdict

    result = services.etcd_verifier(binaries_dir=args.etcd_bin).verify(_manifest(services, args.backup_id))
    if args.output != "table":
        emit_json(asdict(result))
    elif result.ok:
        console().print(f"ok: {result.keys} keys at revision {result.revision} (snapshot {result.expected_revision})")
    else:
        console().print(f"[red]failed:[/red] {result.error}")
    return EXIT_OK if result.ok else EXIT_ERROR


HANDLERS: dict[tuple[str, str | None], Any] = {("etcd", "restore-plan"): restore_plan, ("etcd", "verify"): verify}
