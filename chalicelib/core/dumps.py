"""Database dumps by ephemeral Jobs, the pure part: the policy's ``dumps`` block (the Jobs: ``core/dump_job.py``).

A dump runs the engine's own tool in a Job in the application's namespace and streams its output to S3 through
presigned multipart upload part URLs made for that one run (one key, short expiry), so no AWS credential ever enters
the cluster. The URLs reach the Job in a Secret of its own (a presigned URL is a bearer token until it expires); the
database credentials stay in the application's Secret and reach the Job only as ``secretKeyRef`` environment
variables. The Job cannot complete the multipart upload (that needs credentials): it PUTs a small JSON report
(SHA-256, size, parts, tool version) through one more presigned URL, and Lifeboat completes the upload and re-checks
the SHA-256 by reading the object back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.core.errors import InvalidPolicy
from chalicelib.core.selectors import parse_label_selector

POSTGRES, MYSQL, MONGODB, REDIS, ELASTICSEARCH = "postgres", "mysql", "mongodb", "redis", "elasticsearch"
ENGINES = (POSTGRES, MYSQL, MONGODB, REDIS, ELASTICSEARCH)
WITH_EVERY_BACKUP = "with-every-backup"
DUMP_FIELDS = frozenset(
    {
        "name",
        "engine",
        "namespace",
        "target",
        "port",
        "credentials",
        "databases",
        "image",
        "uploader_image",
        "schedule",
        "timeout",
    }
)
TARGET_FIELDS = frozenset({"service", "selector", "port"})
CREDENTIAL_FIELDS = frozenset({"secret", "user", "user_key", "password_key"})
DEFAULT_TIMEOUT_S = 3600
MAX_TIMEOUT_S = 6 * 3600  # a presigned URL lives as long as the run may; six hours bounds what a leaked one allows
# The engine container runs only the engine's tool: each engine's official image. The uploader (downloader) container
# beside it brings bash, curl and GNU coreutils (split, sha256sum, mkfifo) and gzip; Debian's image of exactly those,
# pinned by tag. Elasticsearch's "tool" is its HTTP API, so curl is its engine image too.
DEFAULT_UPLOADER_IMAGE = "docker.io/library/buildpack-deps:bookworm-curl"
DEFAULT_IMAGES = {
    POSTGRES: "postgres:16-bookworm",
    MYSQL: "mysql:8.4",
    MONGODB: "mongo:7.0",
    REDIS: "redis:7.2-bookworm",
    ELASTICSEARCH: DEFAULT_UPLOADER_IMAGE,
}
DEFAULT_PORTS = {POSTGRES: 5432, MYSQL: 3306, MONGODB: 27017, REDIS: 6379, ELASTICSEARCH: 9200}
EXTENSIONS = {POSTGRES: "pgdump", MYSQL: "sql.gz", MONGODB: "archive.gz", REDIS: "rdb", ELASTICSEARCH: "snapshot.json"}
DEFAULT_USERS = {POSTGRES: "postgres", MYSQL: "root", MONGODB: "root", REDIS: "", ELASTICSEARCH: "elastic"}

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Credentials:
    """Where the database credentials live in the cluster: a Secret's keys, never copied out of it."""

    secret: str
    password_key: str = "password"
    user_key: str = ""  # the user from the Secret, or ...
    user: str = ""  # ... given in the policy (the engine's usual admin user when neither is)


@dataclass(frozen=True)
class DumpSpec:
    """One entry of a policy's ``dumps``: what to dump, from where, with what."""

    name: str
    engine: str
    namespace: str
    service: str = ""  # the target by Service name, or ...
    selector: str = ""  # ... by a pod label selector (the caller resolves it to a pod's address)
    port: int = 0
    credentials: Credentials | None = None
    databases: tuple[str, ...] = ()
    image: str = ""
    timeout_s: int = DEFAULT_TIMEOUT_S
    uploader_image: str = ""  # the uploader's (a restore's downloader's) image, when not DEFAULT_UPLOADER_IMAGE

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.engine]

    @property
    def file_name(self) -> str:
        return f"{self.name}.{self.extension}"

    @property
    def effective_image(self) -> str:
        return self.image or DEFAULT_IMAGES[self.engine]

    @property
    def effective_uploader_image(self) -> str:
        return self.uploader_image or DEFAULT_UPLOADER_IMAGE

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.engine]

    def service_host(self) -> str | None:
        """The in-cluster DNS name of the target Service, or None when the target is a pod selector."""
        return f"{self.service}.{self.namespace}.svc" if self.service else None

    def to_dict(self) -> dict[str, Any]:
        target: dict[str, Any] = {"service": self.service} if self.service else {"selector": self.selector}
        data: dict[str, Any] = {
            "name": self.name,
            "engine": self.engine,
            "namespace": self.namespace,
            "target": target,
            "schedule": WITH_EVERY_BACKUP,
            "timeout": self.timeout_s,
        }
        if self.port:
            data["port"] = self.port
        if self.credentials:
            c = self.credentials
            creds = {"secret": c.secret, "password_key": c.password_key}
            creds.update({k: v for k, v in (("user_key", c.user_key), ("user", c.user)) if v})
            data["credentials"] = creds
        if self.databases:
            data["databases"] = list(self.databases)
        if self.image:
            data["image"] = self.image
        if self.uploader_image:
            data["uploader_image"] = self.uploader_image
        return data


def parse_dumps(data: Any, where: str = "dumps") -> tuple[tuple[DumpSpec, ...] | None, list[str]]:
    """The dumps and no problems, or None and every problem found (each prefixed with ``where``)."""
    if data is None:
        return (), []
    if not isinstance(data, list):
        return None, [f"{where}: must be a list of dumps such as [{{engine: postgres, namespace: shop, target: db}}]"]
    problems: list[str] = []
    specs: list[DumpSpec] = []
    seen: dict[tuple[str, str], int] = {}
    for i, item in enumerate(data):
        spec = _parse_dump(item, f"{where}[{i}]", problems)
        if spec is None:
            continue
        first = seen.setdefault((spec.namespace, spec.name), i)
        if first != i:
            problems.append(f"{where}[{i}]: {spec.namespace}/{spec.name} is also {where}[{first}]; names must differ")
            continue
        specs.append(spec)
    return (None, problems) if problems else (tuple(specs), [])


def dumps_from_list(data: Any, where: str = "dumps") -> tuple[DumpSpec, ...]:
    """``parse_dumps`` that raises ``InvalidPolicy`` naming every problem."""
    specs, problems = parse_dumps(data, where)
    if specs is None:
        raise InvalidPolicy(problems)
    return specs


def _parse_dump(item: Any, where: str, problems: list[str]) -> DumpSpec | None:  # noqa: C901 - one check a field
    if not isinstance(item, Mapping):
        problems.append(f"{where}: must be a mapping with engine, namespace, target and credentials")
        return None
    before = len(problems)
    unknown = sorted(set(item) - DUMP_FIELDS)
    if unknown:
        problems.append(f"{where}: unknown fields {', '.join(unknown)} (known: {', '.join(sorted(DUMP_FIELDS))})")
    engine = item.get("engine")
    if engine not in ENGINES:
        problems.append(f"{where}.engine: must be one of {', '.join(ENGINES)}; got {engine!r}")
        engine = None
    namespace = item.get("namespace")
    if not isinstance(namespace, str) or not _DNS_LABEL.match(namespace):
        problems.append(f"{where}.namespace: must be the application's namespace name; got {namespace!r}")
    service, selector, target_port = _parse_target(item.get("target"), f"{where}.target", problems)
    port = item.get("port", target_port)
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        problems.append(f"{where}.port: must be a TCP port number; got {port!r}")
    credentials = _parse_credentials(item.get("credentials"), engine, f"{where}.credentials", problems)
    databases = _parse_databases(item.get("databases"), engine, f"{where}.databases", problems)
    image = item.get("image", "")
    if not isinstance(image, str):
        problems.append(f"{where}.image: must be an image reference such as postgres:16; got {image!r}")
    uploader_image = item.get("uploader_image", "")
    if not isinstance(uploader_image, str):
        problems.append(
            f"{where}.uploader_image: must be an image reference with bash, curl and coreutils; got {uploader_image!r}"
        )
    schedule = item.get("schedule", WITH_EVERY_BACKUP)
    if schedule != WITH_EVERY_BACKUP:
        problems.append(f"{where}.schedule: only {WITH_EVERY_BACKUP!r} is supported; got {schedule!r}")
    timeout = item.get("timeout", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 < timeout <= MAX_TIMEOUT_S:
        problems.append(f"{where}.timeout: must be a number of seconds from 1 to {MAX_TIMEOUT_S}; got {timeout!r}")
    name = item.get("name") or (f"{engine}-{service or 'db'}" if engine else "")
    if (name or engine) and (not isinstance(name, str) or not _NAME.match(name)):  # no engine: no default name
        problems.append(f"{where}.name: must be lowercase letters, digits and '-', at most 40 characters; got {name!r}")
    if len(problems) > before or engine is None:
        return None
    return DumpSpec(
        name=str(name),
        engine=str(engine),
        namespace=str(namespace),
        service=service,
        selector=selector,
        port=int(port or 0),
        credentials=credentials,
        databases=databases,
        image=str(image),
        timeout_s=int(timeout),
        uploader_image=str(uploader_image),
    )


def _parse_target(value: Any, where: str, problems: list[str]) -> tuple[str, str, int | None]:
    if isinstance(value, str):
        value = {"service": value}
    if not isinstance(value, Mapping) or set(value) - TARGET_FIELDS or ("service" in value) == ("selector" in value):
        problems.append(f"{where}: must be a Service name, {{service: NAME}} or {{selector: 'app=db'}}; got {value!r}")
        return "", "", None
    service, selector = value.get("service", ""), value.get("selector", "")
    if service and (not isinstance(service, str) or not _DNS_LABEL.match(service)):
        problems.append(f"{where}.service: must be a Service name; got {service!r}")
    if "selector" in value:
        try:
            if not isinstance(selector, str) or not selector or not parse_label_selector(selector):
                raise ValueError(selector)
        except Exception:  # noqa: BLE001 - whatever the selector parser finds, the message names the field
            problems.append(f"{where}.selector: must be a non-empty label selector such as app=db; got {selector!r}")
    return str(service or ""), str(selector or ""), value.get("port")


def _parse_credentials(value: Any, engine: str | None, where: str, problems: list[str]) -> Credentials | None:
    if value is None:
        if engine in (POSTGRES, MYSQL, MONGODB):
            problems.append(f"{where}: {engine} needs {{secret: NAME, password_key: KEY}} (a Secret in the namespace)")
        return None
    if not isinstance(value, Mapping) or set(value) - CREDENTIAL_FIELDS or not value.get("secret"):
        problems.append(f"{where}: must be {{secret, password_key, user_key or user}}; got {sorted(value or ())}")
        return None
    if not all(isinstance(v, str) for v in value.values()):
        problems.append(f"{where}: secret, password_key, user_key and user must be strings")
        return None
    if value.get("user") and value.get("user_key"):
        problems.append(f"{where}: give user or user_key, not both")
        return None
    return Credentials(
        value["secret"], value.get("password_key", "password"), value.get("user_key", ""), value.get("user", "")
    )


def _parse_databases(value: Any, engine: str | None, where: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        if engine == POSTGRES:
            problems.append(f"{where}: postgres needs the one database to dump (pg_dump --format=custom holds one)")
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        problems.append(f"{where}: must be a non-empty list of database names; got {value!r}")
        return ()
    if engine in (POSTGRES, MONGODB) and len(value) != 1:
        problems.append(f"{where}: {engine} dumps one database per entry; list one (add an entry for each other)")
    if engine == REDIS:
        problems.append(f"{where}: redis dumps every database in one RDB file; leave databases out")
    return tuple(value)
