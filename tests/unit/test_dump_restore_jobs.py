"""The dump restore Job as data: the restore script, the URL in a Secret of its own, credentials by reference."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from chalicelib.core.dump_job import WORK_MOUNT
from chalicelib.core.dump_restore_job import (
    DOWNLOAD_MOUNT,
    RestoreTarget,
    download_script,
    restore_job,
    restore_job_name,
    restore_script,
    restore_secret,
)
from chalicelib.core.dumps import DEFAULT_UPLOADER_IMAGE, Credentials, dumps_from_list
from chalicelib.core.errors import InvalidPolicy
from tests.support.dump_pods import run_pod


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
    container, downloader = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["bash", "-c", restore_script(spec)]
    assert "pg_restore" in container["command"][2]
    assert container["image"] == "postgres:16-bookworm"
    assert job["metadata"]["namespace"] == "scratch" and job["metadata"]["name"] == restore_job_name("b1", spec, target)
    env = _env(job)
    assert env["LIFEBOAT_HOST"] == "db-copy.scratch.svc" and env["LIFEBOAT_PORT"] == "5432"
    assert env["LIFEBOAT_DATABASES"] == "orders_copy" and env["LIFEBOAT_SOURCE_DATABASE"] == "orders"
    assert env["LIFEBOAT_WORK"] == WORK_MOUNT and env["LIFEBOAT_TIMEOUT"] == str(spec.timeout_s)
    # The dump's own credentials by reference, since the target names none: never a password in the Job.
    assert env["LIFEBOAT_PASSWORD"] == {"secretKeyRef": {"name": "db", "key": "password"}}
    assert env["LIFEBOAT_USER"] == "app"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["download"]["secret"]["secretName"] == job["metadata"]["name"]
    assert volumes["work"] == {"name": "work", "emptyDir": {}}
    # The downloader: the uploader image, the URL's Secret, no database credentials; the engine: no URL.
    assert downloader["name"] == "download" and downloader["image"] == DEFAULT_UPLOADER_IMAGE
    assert downloader["command"] == ["bash", "-c", download_script(spec)]
    down_env = {e["name"]: e.get("value", e.get("valueFrom")) for e in downloader["env"]}
    assert down_env["LIFEBOAT_GET_URL_FILE"] == f"{DOWNLOAD_MOUNT}/url" and down_env["LIFEBOAT_WORK"] == WORK_MOUNT
    assert not {"LIFEBOAT_PASSWORD", "LIFEBOAT_USER", "LIFEBOAT_HOST"} & set(down_env)
    assert "LIFEBOAT_GET_URL_FILE" not in env
    assert [m["name"] for m in container["volumeMounts"]] == ["work"]
    assert {m["name"] for m in downloader["volumeMounts"]} == {"download", "work"}
    assert (
        restore_job("b1", _spec(uploader_image="registry.local/curl:8"), target)["spec"]["template"]["spec"][
            "containers"
        ][1]["image"]
        == "registry.local/curl:8"
    )


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


def _redis() -> Any:
    return dumps_from_list([{"name": "cache", "engine": "redis", "namespace": "shop", "target": "redis"}])[0]


def test_the_redis_restore_job_loads_the_rdb_in_a_scratch_server_and_migrates_every_key_to_the_target() -> None:
    job = restore_job("b1", _redis(), RestoreTarget("scratch", "redis-copy"))
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert 'redis-server --port "$port" --bind 127.0.0.1' in script and "--dbfilename dump.rdb" in script
    assert "MIGRATE" in script and "COPY REPLACE" in script
    env = _env(job)
    assert env["LIFEBOAT_HOST"] == "redis-copy.scratch.svc" and env["LIFEBOAT_PORT"] == "6379"
    assert env["LIFEBOAT_DATABASES"] == ""


def test_a_redis_restore_into_a_named_database_is_refused_in_one_sentence() -> None:
    with pytest.raises(InvalidPolicy, match="shop/cache: a redis restore keeps each key's database number"):
        restore_job("b1", _redis(), RestoreTarget("scratch", "redis", "0"))


def test_the_redis_quote_escapes_backslashes_and_double_quotes_for_redis_cli(tmp_path: Path) -> None:
    script = restore_script(_redis())
    quote = next(line for line in script.splitlines() if line.startswith("lifeboat_quote()"))
    out = subprocess.run(
        ["bash", "-c", quote + '\nlifeboat_quote "$1"', "-", 'a"b\\c d'], capture_output=True, text=True, check=True
    )
    assert out.stdout == '"a\\"b\\\\c d"'


def _es(**extra: Any) -> Any:
    entry = {"name": "search", "engine": "elasticsearch", "namespace": "shop", "target": "es", **extra}
    return dumps_from_list([entry])[0]


def test_the_elasticsearch_restore_job_never_takes_the_dumps_index_as_its_prefix() -> None:
    spec = _es(databases=["products"])
    assert _env(restore_job("b1", spec, RestoreTarget("scratch", "es")))["LIFEBOAT_DATABASES"] == ""
    env = _env(restore_job("b1", spec, RestoreTarget("scratch", "es", "lifeboat_verify_ab12")))
    assert env["LIFEBOAT_DATABASES"] == "lifeboat_verify_ab12" and env["LIFEBOAT_PORT"] == "9200"


class _Restore(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, str]]] = []

    def do_GET(self) -> None:  # the artifact: the snapshot's description as the dump Job stored it
        body = json.dumps({"snapshot": {"snapshot": "lifeboat-b1-search", "state": "SUCCESS"}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Restore.seen.append((self.path, self.headers["Authorization"], self.rfile.read(length).decode()))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def test_the_elasticsearch_restore_script_restores_the_named_snapshot_renamed_under_the_prefix(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Restore)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    spec = _es()
    target = RestoreTarget("scratch", "es", "lifeboat_verify_ab12", port=port)
    try:
        ran = run_pod(
            restore_job("b1", spec, target),
            restore_secret("b1", spec, target, f"http://127.0.0.1:{port}/artifact"),
            tmp_path,
            app_secrets={},
            env={"LIFEBOAT_HOST": "127.0.0.1", "LIFEBOAT_PASSWORD": "pw"},
            timeout_s=30,
        )
    finally:
        server.shutdown()
    assert ran["restore"].returncode == 0 and ran["download"].returncode == 0, ran
    path, auth, body = _Restore.seen[-1]
    assert path == "/_snapshot/lifeboat/lifeboat-b1-search/_restore?wait_for_completion=true"
    assert auth == "Basic " + base64.b64encode(b"elastic:pw").decode()
    assert json.loads(body) == {
        "include_global_state": False,
        "rename_pattern": "(.+)",
        "rename_replacement": "lifeboat_verify_ab12_$1",
    }
