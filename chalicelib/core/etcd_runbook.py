"""The etcd restore runbook: per-member shell scripts (stop, restore, swap, start, verify) for etcd 3.5 and 3.6+."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from chalicelib.core.errors import CoreError

# etcd's recovery guide: bump every revision by far more than a restore can have lost (a billion covers about a
# week at 1,500 writes/s) and mark them compacted, so watchers (kube-apiserver caches, informers) relist.
BUMP_REVISION = 1_000_000_000
PHASES = ("check", "stop", "restore", "start", "verify")


class InvalidRunbook(CoreError):
    """The members or options of a restore plan are malformed."""


@dataclass(frozen=True)
class Member:
    name: str
    peer_url: str
    client_url: str

    @property
    def host(self) -> str:
        return urlsplit(self.peer_url).hostname or ""


def parse_members(value: str, *, client_port: int = 2379) -> tuple[Member, ...]:
    """``name=https://10.0.0.1:2380,...`` (the ``--initial-cluster`` form); client URLs default to port 2379."""
    members: list[Member] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        name, sep, url = item.partition("=")
        parts = urlsplit(url)
        if not sep or not name or parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
            raise InvalidRunbook(f"member {item!r} must be name=https://host:port (its peer URL)")
        client = f"https://{parts.hostname}:{client_port}"
        members.append(Member(name=name, peer_url=url, client_url=client))
    if not members:
        raise InvalidRunbook("--members needs at least one name=peer-url")
    if len({m.name for m in members}) != len(members):
        raise InvalidRunbook("member names must be unique")
    return tuple(members)


@dataclass(frozen=True)
class RunbookFacts:
    """What the plan restores: the backup, its snapshot and the cluster it rebuilds."""

    cluster: str
    backup_id: str
    etcd_version: str  # the version that took the snapshot (or the one restoring, when given)
    revision: int
    sha256: str
    members: tuple[Member, ...]
    cluster_token: str
    data_dir: str = "/var/lib/etcd"
    snapshot_path: str = "/var/lib/etcd-restore/etcd.db"
    owner: str = "etcd:etcd"
    control_plane: str = "kubeadm"  # or "systemd"
    pki_dir: str = "/etc/kubernetes/pki/etcd"


def uses_etcdutl(version: str) -> bool:
    """etcd 3.6 removed ``etcdctl snapshot restore``; 3.5 has both, and the seed procedure uses etcdctl there."""
    try:
        major, minor = (int(p) for p in version.lstrip("v").split(".")[:2])
    except ValueError:
        return True  # unknown: the tool that every current release has
    return (major, minor) >= (3, 6)


def initial_cluster(members: tuple[Member, ...]) -> str:
    return ",".join(f"{m.name}={m.peer_url}" for m in members)


def member_script(facts: RunbookFacts, member: Member) -> str:
    """The script one member runs: ``./restore-<name>.sh PHASE`` with PHASE in check, stop, restore, start, verify
    (or ``all`` for a single-member cluster). Every path and command is a variable the operator may override."""
    q = shlex.quote
    kubeadm = facts.control_plane == "kubeadm"
    stop_api = (
        "mv /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/kube-apiserver.yaml.lifeboat"
        if kubeadm
        else "systemctl stop kube-apiserver"
    )
    start_api = (
        "mv /etc/kubernetes/kube-apiserver.yaml.lifeboat /etc/kubernetes/manifests/kube-apiserver.yaml"
        if kubeadm
        else "systemctl start kube-apiserver"
    )
    stop_etcd = (
        "mv /etc/kubernetes/manifests/etcd.yaml /etc/kubernetes/etcd.yaml.lifeboat"
        if kubeadm
        else "systemctl stop etcd"
    )
    start_etcd = (
        "mv /etc/kubernetes/etcd.yaml.lifeboat /etc/kubernetes/manifests/etcd.yaml"
        if kubeadm
        else "systemctl start etcd"
    )
    if uses_etcdutl(facts.etcd_version):
        restore_tool = '"$ETCDUTL" snapshot restore'
        bump = f"BUMP_FLAGS=(--bump-revision {BUMP_REVISION} --mark-compacted)"
    else:
        restore_tool = 'ETCDCTL_API=3 "$ETCDCTL" snapshot restore'
        # The flags reached 3.5 in a patch release: use them when this etcdctl has them.
        bump = (
            "BUMP_FLAGS=()\n"
            'if ETCDCTL_API=3 "$ETCDCTL" snapshot restore --help 2>&1 | grep -q -- --bump-revision; then\n'
            f"  BUMP_FLAGS=(--bump-revision {BUMP_REVISION} --mark-compacted)\n"
            "fi"
        )
    tag = facts.backup_id
    return f"""#!/usr/bin/env bash
# Restore etcd member {member.name} of cluster {facts.cluster} from Lifeboat backup {facts.backup_id}.
# Snapshot: etcd {facts.etcd_version or "unknown"}, revision {facts.revision}, sha256 {facts.sha256}.
# Members: {initial_cluster(facts.members)}
#
# Order across members: every member runs "check", then "stop"; then every member "restore"; then every member
# "start"; then "verify" on one. A single-member cluster may run "all". Override any variable below from the
# environment; the old data directory is kept as $OLD_DIR.
set -euo pipefail

SNAPSHOT="${{SNAPSHOT:-{facts.snapshot_path}}}"
DATA_DIR="${{DATA_DIR:-{facts.data_dir}}}"
RESTORE_DIR="${{RESTORE_DIR:-$DATA_DIR.lifeboat-{tag}}}"
OLD_DIR="${{OLD_DIR:-$DATA_DIR.before-{tag}}}"
OWNER="${{OWNER:-{facts.owner}}}"
ETCDCTL="${{ETCDCTL:-etcdctl}}"
ETCDUTL="${{ETCDUTL:-etcdutl}}"
ENDPOINT="${{ENDPOINT:-{member.client_url}}}"
CACERT="${{CACERT:-{facts.pki_dir}/ca.crt}}"
CERT="${{CERT:-{facts.pki_dir}/healthcheck-client.crt}}"
KEY="${{KEY:-{facts.pki_dir}/healthcheck-client.key}}"
STOP_APISERVER="${{STOP_APISERVER:-{stop_api}}}"
START_APISERVER="${{START_APISERVER:-{start_api}}}"
STOP_ETCD="${{STOP_ETCD:-{stop_etcd}}}"
START_ETCD="${{START_ETCD:-{start_etcd}}}"
EXPECTED_REVISION={facts.revision}

etcdctl() {{ ETCDCTL_API=3 "$ETCDCTL" --endpoints="$ENDPOINT" --cacert="$CACERT" --cert="$CERT" --key="$KEY" "$@"; }}

check() {{
  echo "{facts.sha256}  $SNAPSHOT" | sha256sum -c -
}}

stop() {{
  echo "stopping kube-apiserver, then etcd"
  eval "$STOP_APISERVER"
  eval "$STOP_ETCD"
}}

restore() {{
  {bump.replace(chr(10), chr(10) + "  ")}
  rm -rf "$RESTORE_DIR"
  {restore_tool} "$SNAPSHOT" \\
    --name={q(member.name)} \\
    --initial-cluster={q(initial_cluster(facts.members))} \\
    --initial-cluster-token={q(facts.cluster_token)} \\
    --initial-advertise-peer-urls={q(member.peer_url)} \\
    --data-dir="$RESTORE_DIR" ${{BUMP_FLAGS[@]+"${{BUMP_FLAGS[@]}}"}}
  if [ -e "$DATA_DIR" ]; then mv "$DATA_DIR" "$OLD_DIR"; fi
  mv "$RESTORE_DIR" "$DATA_DIR"
  chown -R "$OWNER" "$DATA_DIR"
  chmod 700 "$DATA_DIR"
}}

start() {{
  echo "starting etcd, then kube-apiserver once etcd is healthy"
  eval "$START_ETCD"
  for _ in $(seq 1 60); do
    if etcdctl endpoint health >/dev/null 2>&1; then break; fi
    sleep 2
  done
  etcdctl endpoint health
  eval "$START_APISERVER"
}}

verify() {{
  etcdctl endpoint status --write-out=table
  etcdctl member list --write-out=table
  revision=$(etcdctl endpoint status --write-out=json | grep -o '"revision":[0-9]*' | head -1 | cut -d: -f2)
  keys=$(etcdctl get "" --prefix --count-only --write-out=fields | grep '"Count"' | awk '{{print $3}}')
  echo "revision $revision (snapshot $EXPECTED_REVISION), $keys keys"
  if [ "$revision" -lt "$EXPECTED_REVISION" ]; then echo "revision went back" >&2; exit 1; fi
  echo "then: kubectl get --raw /readyz?verbose && kubectl get nodes && kubectl get pods -A"
}}

case "${{1:-}}" in
  check | stop | restore | start | verify) "$1" ;;
  all) check && stop && restore && start && verify ;;
  *) echo "usage: $0 check|stop|restore|start|verify|all" >&2; exit 2 ;;
esac
"""


def readme(facts: RunbookFacts) -> str:
    names = [m.name for m in facts.members]
    lines = [
        f"# Restoring etcd of {facts.cluster} from backup {facts.backup_id}",
        "",
        f"Snapshot `etcd.db`: etcd {facts.etcd_version or 'unknown'}, revision {facts.revision}, "
        f"sha256 `{facts.sha256}` (verified when this plan was written).",
        f"Restore tool: {'etcdutl' if uses_etcdutl(facts.etcd_version) else 'etcdctl (etcd 3.5)'}; "
        f"revisions bumped by {BUMP_REVISION} and marked compacted where the tool supports it.",
        "",
        f"1. Copy `etcd.db` to `{facts.snapshot_path}` and `restore-<member>.sh` to each member.",
        *(
            f"{i + 2}. On every member ({', '.join(names)}): `./restore-<member>.sh {phase}`"
            for i, phase in enumerate(("check", "stop", "restore", "start"))
        ),
        f"6. On one member: `./restore-{names[0]}.sh verify`, then `kubectl get --raw /readyz?verbose`.",
        "",
        f"The data directory each member had is kept as `{facts.data_dir}.before-{facts.backup_id}`.",
        "",
    ]
    return "\n".join(lines)
