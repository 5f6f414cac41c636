"""The dump restore Job as data: the restore script, the URL in a Secret of its own, credentials by reference."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core.dumps import (
    DOWNLOAD_MOUNT,
    Credentials,
    RestoreTarget,
    dumps_from_list,
    restore_job,
    restore_job_name,
    restore_script,
    restore_secret,
)
from chalicelib.core.errors import InvalidPolicy


def _spec(engine: str = "postgres", **extra: Any) -> Any:
    entry = {
        "name": "orders",
        "engine": engine,
        "namespace": "shop",
        "target": "db",
        "credentials": {"secret": "db", "password_key": "password", "user": "app"},
        **extra,
    }
    if engine == "postgres" and "databases" not in extra:
        entry["databases"] = ["orders"]
    return dumps_from_list([entry])[0]


def _env(job: dict[str, Any]) -> dict[str, Any]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_restore_job_runs_the_engines_restore_script_against_the_target_service() -> None:
    spec = _spec()
    target = RestoreTarget("scratch", "db-copy", "orders_copy")
    job = restore_job("b1", spec, target)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["bash", "-c", restore_script(spec)]
    assert "pg_restore" in container["command"][2]
    assert container["image"] == "postgres:16-bookworm"
    assert job["metadata"]["namespace"] == "scratch" and job["metadata"]["name"] == restore_job_name("b1", spec, target)
    env = _env(job)
    assert env["LIFEBOAT_HOST"] == "db-copy.scratch.svc" and env["LIFEBOAT_PORT"] == "5432"
    assert env["LIFEBOAT_DATABASES"] == "orders_copy" and env["LIFEBOAT_SOURCE_DATABASE"] == "orders"
    assert env["LIFEBOAT_GET_URL_FILE"] == f"{DOWNLOAD_MOUNT}/url"
    # The dump's own credentials by reference, since the target names none: never a password in the Job.
    assert env["LIFEBOAT_PASSWORD"] == {"secretKeyRef": {"name": "db", "key": "password"}}
    assert env["LIFEBOAT_USER"] == "app"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["download"]["secret"]["secretName"] == job["metadata"]["name"]


def test_the_targets_credentials_and_database_replace_the_dumps() -> None:
    spec = _spec("mysql", databases=["shop"])
    target = RestoreTarget("scratch", "mariadb", credentials=Credentials("scratch-db", "root-password", "user"))
    env = _env(restore_job("b1", spec, target))
    assert env["LIFEBOAT_PASSWORD"] == {"secretKeyRef": {"name": "scratch-db", "key": "root-password"}}
    assert env["LIFEBOAT_USER"] == {"secretKeyRef": {"name": "scratch-db", "key": "user"}}
    assert env["LIFEBOAT_DATABASES"] == "shop", "no database given: the dump's one"
    assert env["LIFEBOAT_PORT"] == "3306"


def test_the_url_is_in_a_secret_of_its_own_named_like_the_job() -> None:
    spec = _spec()
    target = RestoreTarget("scratch", "db")
    secret = restore_secret("b1", spec, target, "https://s3.example/key?X-Amz-Signature=abc")
    assert secret["metadata"]["name"] == restore_job_name("b1", spec, target)
    assert secret["metadata"]["namespace"] == "scratch"
    assert secret["stringData"] == {"url": "https://s3.example/key?X-Amz-Signature=abc\n"}
    job = restore_job("b1", spec, target)
    assert "X-Amz-Signature" not in str(job), "the URL is a bearer token: only the Secret holds it"


def test_restore_job_names_differ_per_target_and_are_dns_labels() -> None:
    spec = _spec(name="a" * 40)
    one = restore_job_name("b1", spec, RestoreTarget("scratch", "db"))
    two = restore_job_name("b1", spec, RestoreTarget("scratch", "db", "other"))
    assert one != two and len(one) <= 63 and len(two) <= 63


def test_engines_without_a_restore_job_are_refused_naming_the_dump() -> None:
    spec = dumps_from_list([{"name": "cache", "engine": "redis", "namespace": "shop", "target": "redis"}])[0]
    with pytest.raises(InvalidPolicy, match="shop/cache: redis dumps have no restore Job"):
        restore_job("b1", spec, RestoreTarget("scratch", "redis"))
