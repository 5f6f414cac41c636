"""A policy's ``verify`` block: when its backups are restored for proof, what is checked, and the RTO target.

```yaml
verify:
  schedule: {cron: "0 4 * * 0", timezone: Europe/Berlin}
  kinds: [resources, volumes]        # resources, volumes, etcd, dumps, replica
  target_cluster: staging            # a registered cluster; default the policy's own
  scratch_prefix: lbv-               # scratch namespaces are <prefix><run>-<namespace>
  timeout: 1800                      # seconds for the whole run, cleanup excluded
  rto_target_minutes: 30
  checks:
    - http: {service: web, namespace: shop, port: 80, path: /healthz, expect_status: 200}
    - job: {image: registry.example/shop-smoke:1.4, command: [./smoke], namespace: shop}
```
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from chalicelib.core.schedule import Schedule, schedule_problems

VERIFY_FIELDS = frozenset(
    {"schedule", "kinds", "target_cluster", "scratch_prefix", "timeout", "rto_target_minutes", "checks"}
)
KINDS = ("resources", "volumes", "etcd", "dumps", "replica")
DEFAULT_KINDS = ("resources",)
DEFAULT_SCRATCH_PREFIX = "lbv-"
DEFAULT_TIMEOUT_S = 1800
MAX_TIMEOUT_S = 6 * 3600  # a run checkpoints through the queue, but a verification that takes longer proves little
# Scratch namespaces are "<prefix><run id>-<namespace>", so the prefix must leave room in the 63-character label.
SCRATCH_PREFIX = re.compile(r"[a-z]([-a-z0-9]{0,8})")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_HTTP_FIELDS = frozenset({"service", "namespace", "port", "path", "expect_status", "timeout"})
_JOB_FIELDS = frozenset({"image", "command", "args", "namespace", "timeout"})
DEFAULT_CHECK_TIMEOUT_S = 120


@dataclass(frozen=True)
class Check:
    """A user's check of a restored application: an HTTP probe of a Service, or a Job of their own image."""

    type: Literal["http", "job"]
    namespace: str  # in the backup's namespaces; the run maps it to the scratch namespace
    service: str = ""
    port: int = 80
    path: str = "/"
    expect_status: int = 200
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    timeout_s: int = DEFAULT_CHECK_TIMEOUT_S

    @property
    def name(self) -> str:
        if self.type == "http":
            return f"http {self.namespace}/{self.service}:{self.port}{self.path}"
        return f"job {self.namespace} {self.image}"

    def to_dict(self) -> dict[str, Any]:
        if self.type == "http":
            body: dict[str, Any] = {
                "service": self.service,
                "namespace": self.namespace,
                "port": self.port,
                "path": self.path,
                "expect_status": self.expect_status,
            }
        else:
            body = {"image": self.image, "namespace": self.namespace, "command": list(self.command)}
            if self.args:
                body["args"] = list(self.args)
        body["timeout"] = self.timeout_s
        return {self.type: body}


@dataclass(frozen=True)
class VerifyPolicy:
    schedule: Schedule
    kinds: tuple[str, ...] = DEFAULT_KINDS
    target_cluster: str | None = None  # None: the policy's own cluster
    scratch_prefix: str = DEFAULT_SCRATCH_PREFIX
    timeout_s: int = DEFAULT_TIMEOUT_S
    rto_target_minutes: int | None = None
    checks: tuple[Check, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schedule": {"cron": self.schedule.cron, "timezone": self.schedule.timezone},
            "kinds": list(self.kinds),
            "scratch_prefix": self.scratch_prefix,
            "timeout": self.timeout_s,
            "checks": [c.to_dict() for c in self.checks],
        }
        if self.target_cluster:
            data["target_cluster"] = self.target_cluster
        if self.rto_target_minutes is not None:
            data["rto_target_minutes"] = self.rto_target_minutes
        return data


def parse_verify(data: Any, where: str, problems: list[str]) -> VerifyPolicy | None:
    """The block, or None: absent, or invalid with every problem appended (each prefixed with ``where``)."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        problems.append(f"{where}: must be a mapping such as {{schedule: '0 4 * * 0', kinds: [resources]}}")
        return None
    before = len(problems)
    unknown = sorted(set(data) - VERIFY_FIELDS)
    if unknown:
        problems.append(f"{where}: unknown fields {', '.join(unknown)} (known: {', '.join(sorted(VERIFY_FIELDS))})")
    schedule = _schedule(data.get("schedule"), f"{where}.schedule", problems)
    kinds = _kinds(data.get("kinds", list(DEFAULT_KINDS)), f"{where}.kinds", problems)
    target = data.get("target_cluster")
    if target is not None and (not isinstance(target, str) or not target):
        problems.append(f"{where}.target_cluster: must be a registered cluster's name; got {target!r}")
    prefix = data.get("scratch_prefix", DEFAULT_SCRATCH_PREFIX)
    if not isinstance(prefix, str) or not SCRATCH_PREFIX.fullmatch(prefix.rstrip("-")) or len(prefix) > 10:
        problems.append(
            f"{where}.scratch_prefix: must be 1-10 lowercase letters, digits or '-', starting with a letter; "
            f"got {prefix!r}"
        )
    timeout = _seconds(data.get("timeout", DEFAULT_TIMEOUT_S), f"{where}.timeout", MAX_TIMEOUT_S, problems)
    rto = data.get("rto_target_minutes")
    if rto is not None and (isinstance(rto, bool) or not isinstance(rto, int) or rto <= 0):
        problems.append(f"{where}.rto_target_minutes: must be a positive number of minutes; got {rto!r}")
    checks = _checks(data.get("checks", []), f"{where}.checks", problems)
    if len(problems) > before or schedule is None or kinds is None or checks is None or timeout is None:
        return None
    return VerifyPolicy(
        schedule=schedule,
        kinds=kinds,
        target_cluster=target,
        scratch_prefix=prefix,
        timeout_s=timeout,
        rto_target_minutes=rto,
        checks=checks,
    )


def _schedule(data: Any, where: str, problems: list[str]) -> Schedule | None:
    if isinstance(data, str):
        data = {"cron": data}
    if not isinstance(data, Mapping) or "cron" not in data:
        problems.append(f"{where}: required, e.g. {{cron: '0 4 * * 0', timezone: Europe/Berlin}}")
        return None
    unknown = sorted(set(data) - {"cron", "timezone"})
    if unknown:
        problems.append(f"{where}: unknown fields {', '.join(unknown)} (known: cron, timezone)")
        return None
    cron, timezone = data.get("cron"), data.get("timezone", "UTC")
    found = schedule_problems(cron, timezone, None, where)
    problems.extend(found)
    return None if found else Schedule(cron=str(cron).strip(), timezone=str(timezone))


def _kinds(data: Any, where: str, problems: list[str]) -> tuple[str, ...] | None:
    if not isinstance(data, list) or not data or not all(isinstance(k, str) for k in data):
        problems.append(f"{where}: must be a non-empty list of {', '.join(KINDS)}")
        return None
    unknown = [k for k in data if k not in KINDS]
    if unknown:
        problems.append(f"{where}: unknown kinds {', '.join(unknown)} (known: {', '.join(KINDS)})")
        return None
    return tuple(k for k in KINDS if k in data)  # one order, whatever the file's


def _seconds(value: Any, where: str, most: int, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= most:
        problems.append(f"{where}: must be a number of seconds between 1 and {most}; got {value!r}")
        return None
    return value


def _checks(data: Any, where: str, problems: list[str]) -> tuple[Check, ...] | None:
    if not isinstance(data, list):
        problems.append(f"{where}: must be a list of {{http: ...}} or {{job: ...}} checks")
        return None
    checks = []
    for index, item in enumerate(data):
        check = _check(item, f"{where}[{index}]", problems)
        if check is not None:
            checks.append(check)
    return tuple(checks) if len(checks) == len(data) else None


def _check(item: Any, where: str, problems: list[str]) -> Check | None:
    if not isinstance(item, Mapping) or len(item) != 1 or next(iter(item)) not in ("http", "job"):
        problems.append(
            f"{where}: must be one of {{http: {{service, namespace, port, path}}}} or {{job: {{image, ...}}}}"
        )
        return None
    kind, body = next(iter(item.items()))
    if not isinstance(body, Mapping):
        problems.append(f"{where}.{kind}: must be a mapping")
        return None
    where = f"{where}.{kind}"
    known = _HTTP_FIELDS if kind == "http" else _JOB_FIELDS
    before = len(problems)
    unknown = sorted(set(body) - known)
    if unknown:
        problems.append(f"{where}: unknown fields {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    namespace = body.get("namespace")
    if not isinstance(namespace, str) or not _NAME.fullmatch(namespace):
        problems.append(f"{where}.namespace: required, the backed-up namespace the check runs in; got {namespace!r}")
    timeout = _seconds(body.get("timeout", DEFAULT_CHECK_TIMEOUT_S), f"{where}.timeout", 3600, problems)
    if kind == "http":
        return _http_check(body, where, problems, before, str(namespace), timeout)
    return _job_check(body, where, problems, before, str(namespace), timeout)


def _http_check(
    body: Mapping[str, Any], where: str, problems: list[str], before: int, namespace: str, timeout: int | None
) -> Check | None:
    service, port = body.get("service"), body.get("port", 80)
    path, status = body.get("path", "/"), body.get("expect_status", 200)
    if not isinstance(service, str) or not _NAME.fullmatch(service):
        problems.append(f"{where}.service: required, a Service name; got {service!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append(f"{where}.port: must be a port number; got {port!r}")
    if not isinstance(path, str) or not path.startswith("/"):
        problems.append(f"{where}.path: must start with '/'; got {path!r}")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        problems.append(f"{where}.expect_status: must be an HTTP status code; got {status!r}")
    if len(problems) > before or timeout is None:
        return None
    return Check("http", namespace, service=str(service), port=port, path=path, expect_status=status, timeout_s=timeout)


def _job_check(
    body: Mapping[str, Any], where: str, problems: list[str], before: int, namespace: str, timeout: int | None
) -> Check | None:
    image = body.get("image")
    if not isinstance(image, str) or not image.strip():
        problems.append(f"{where}.image: required, the image whose Job must succeed; got {image!r}")
    lists = {}
    for name in ("command", "args"):
        value = body.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{where}.{name}: must be a list of strings; got {value!r}")
        else:
            lists[name] = tuple(value)
    if len(problems) > before or timeout is None:
        return None
    return Check("job", namespace, image=str(image), command=lists["command"], args=lists["args"], timeout_s=timeout)


def scratch_namespace(prefix: str, run_id: str, namespace: str) -> str:
    """Where a verification restores ``namespace``: ``<prefix><run id>-<namespace>``, a valid namespace name.

    Too long a result keeps its start and ends with a digest of the whole, so two long namespaces of one backup
    never map to one scratch namespace.
    """
    name = f"{prefix}{run_id}-{namespace}".lower()
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"
