"""The verification's ``dumps`` kind: every dump of the verified backup restored by its mirror Job into a scratch
database of the restored target in the scratch namespace, once the restored workloads are ready.

A run keeps one entry per dump in its progress (so the wait spans invocations): ``waiting`` (for readiness),
``running`` (the Job started), then ``passed``, ``failed`` (with the error) or ``not run`` (with the reason: no
controllers on the target cluster, a dump that failed when it was taken, a target given by pod selector). Never
silently passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.core.dump_restore_job import RestoreTarget
from chalicelib.core.dumps import REDIS, DumpSpec, dumps_from_list
from chalicelib.core.errors import InvalidPolicy
from chalicelib.kube.errors import KubeError
from chalicelib.repository.presigned import presigned_get
from chalicelib.repository.repo import MANIFEST_NAME, Repository
from chalicelib.retry import describe
from chalicelib.snapshots.dump_jobs import FAILED, RUNNING, SUCCEEDED
from chalicelib.snapshots.dump_restores import DumpRestores
from chalicelib.snapshots.dumps import DumpError

WAITING, STARTED, PASSED, NOT_RUN, FAILED_ = "waiting", "running", "passed", "not run", "failed"
URL_EXPIRY_S = 3600
_NEVER_STARTED = "its restore Job never started, since the run failed or timed out before the restore was ready"


def scratch_database(scratch_id: str) -> str:
    """``lifeboat_verify_<short id>``: a name every engine takes (letters, digits, underscores)."""
    short = "".join(c for c in scratch_id if c.isalnum())[-12:].lower()
    return f"lifeboat_verify_{short}"


def plan(
    manifest: Any, specs: tuple[DumpSpec, ...], mapping: Mapping[str, str], scratch_id: str, *, controllers: bool
) -> tuple[dict[str, Any], ...]:
    """One entry per dump of the backup: waiting for readiness, or not run and why."""
    by_key = {(s.namespace, s.name): s for s in specs}
    entries = []
    for record in manifest.dumps or ():
        ns, name, engine = record["namespace"], record["name"], record["engine"]
        spec = by_key.get((ns, name)) or DumpSpec(name=name, engine=engine, namespace=ns)
        entry: dict[str, Any] = {
            "dump": f"{ns}/{name}",
            "engine": engine,
            "key": record.get("key", ""),
            "spec": spec.to_dict(),
            "namespace": mapping.get(ns, ""),
            "database": "" if engine == REDIS else scratch_database(scratch_id),
            "state": WAITING,
            "error": "",
        }
        if record.get("state") != "completed":
            entry.update(state=NOT_RUN, error=f"the dump failed when it was taken: {record.get('error', '')}".strip())
        elif not spec.service:
            entry.update(state=NOT_RUN, error="its target is a pod selector, which names no Service to restore into")
        elif not entry["namespace"]:
            entry.update(state=NOT_RUN, error=f"namespace {ns} is not in the restored backup")
        elif not controllers:
            entry.update(
                state=NOT_RUN,
                error="no kube-controller-manager runs on the target cluster, so no database pod can become ready",
            )
        entries.append(entry)
    return tuple(entries)


def _spec(entry: Mapping[str, Any]) -> DumpSpec:
    return dumps_from_list([entry["spec"]], f"dump {entry['dump']}")[0]


def _target(entry: Mapping[str, Any], spec: DumpSpec) -> RestoreTarget:
    return RestoreTarget(entry["namespace"], spec.service, entry["database"], create_database=True)


def start(
    client: Any, repo: Repository, cluster: str, backup_id: str, entries: tuple[dict[str, Any], ...]
) -> tuple[dict[str, Any], ...]:
    """Start the restore Job of every waiting entry (the workloads are ready); one that cannot start has failed."""
    restores = DumpRestores(client)
    prefix = repo.manifest_key(cluster, backup_id)[: -len(MANIFEST_NAME)]
    out = []
    for entry in entries:
        entry = dict(entry)
        if entry["state"] == WAITING:
            try:
                spec = _spec(entry)
                url = presigned_get(repo.store, prefix + entry["key"], expires_s=URL_EXPIRY_S)
                entry["job"] = restores.start(backup_id, spec, _target(entry, spec), url)
                entry["state"] = STARTED
            except (DumpError, InvalidPolicy, KubeError) as exc:
                entry.update(state=FAILED_, error=f"the restore Job could not start: {describe(exc)}")
            except Exception as exc:  # noqa: BLE001 - a URL that cannot be made fails this dump, named
                entry.update(state=FAILED_, error=f"the dump could not be read for a restore: {describe(exc)}")
        out.append(entry)
    return tuple(out)


def poll(client: Any, entries: tuple[dict[str, Any], ...], *, timed_out: bool) -> tuple[dict[str, Any], ...]:
    """Look at every running Job once; past the run's deadline a running one has failed."""
    restores = DumpRestores(client)
    out = []
    for entry in entries:
        entry = dict(entry)
        if entry["state"] == STARTED:
            try:
                state, why = restores.observe(entry["namespace"], entry["job"])
            except KubeError as exc:
                state, why = FAILED, f"the restore Job {entry['namespace']}/{entry['job']} could not be read: {exc}"
            if state == SUCCEEDED:
                entry["state"] = PASSED
            elif state == FAILED:
                entry.update(state=FAILED_, error=why)
            elif state == RUNNING and timed_out:
                entry.update(state=FAILED_, error=f"the restore Job {entry['job']} did not finish before the timeout")
        out.append(entry)
    return tuple(out)


def waiting(entries: tuple[dict[str, Any], ...]) -> bool:
    return any(e["state"] in (WAITING, STARTED) for e in entries)


def running(entries: tuple[dict[str, Any], ...]) -> bool:
    return any(e["state"] == STARTED for e in entries)


def outcome(entries: tuple[dict[str, Any], ...], backup_id: str) -> tuple[str, list[str]]:
    """(the kind's outcome, one problem per dump that failed)."""
    if not entries:
        return f"not verified: backup {backup_id} holds no dumps", []
    failed = [e for e in entries if e["state"] in (FAILED_, WAITING, STARTED)]
    not_run = [e for e in entries if e["state"] == NOT_RUN]
    passed = [e for e in entries if e["state"] == PASSED]
    problems = [f"dump {e['dump']} did not restore: {e['error'] or _NEVER_STARTED}" for e in failed]
    if failed:
        return f"failed: {len(failed)} of {len(entries)} dumps did not restore", problems
    if not_run:
        why = "; ".join(f"{e['dump']}: {e['error']}" for e in not_run)
        return f"not verified: {len(not_run)} of {len(entries)} dumps not run ({why})", []
    return f"verified: {len(passed)} dumps restored into scratch databases", []


def recorded(entries: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """What the run's record keeps per dump: which, where it was restored, passed / failed / not run and why."""
    fields = ("dump", "engine", "namespace", "database", "job", "state", "error")
    return [{k: e[k] for k in fields if e.get(k)} | {"state": e["state"]} for e in entries]
