"""The signed API over real HTTP: ``chalice local`` in a subprocess against a moto server, requests with urllib."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import add_client, register_clusters, signed_headers
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
TABLE = "lifeboat-local"
CLIENT_ID = "local-ci"
SECRET = "local-api-key"
BACKUP_ID = "20261122T100000Z-0c0ffe"
TARGET = "dr"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def aws_resources(moto_endpoint: str) -> dict[str, str]:
    import boto3

    from chalicelib.catalog import BackupCatalog
    from chalicelib.catalog.schema import create_table
    from chalicelib.core.models import BackupState

    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="testing", region_name=REGION
    )
    dynamodb = session.client("dynamodb", endpoint_url=moto_endpoint)
    create_table(dynamodb, TABLE)
    register_clusters(dynamodb, TABLE, "prod", TARGET)
    grant = {"read": ["prod"], "restore_from": ["prod"], "restore_into": [TARGET]}
    add_client(dynamodb, session.client("secretsmanager", endpoint_url=moto_endpoint), TABLE, CLIENT_ID, grant, SECRET)
    queue_url = session.client("sqs", endpoint_url=moto_endpoint).create_queue(QueueName="lifeboat-restore-jobs")[
        "QueueUrl"
    ]
    catalog = BackupCatalog(dynamodb, TABLE)
    now = datetime.now(UTC)
    catalog.claim_job("job-local", "prod", BACKUP_ID, now=now)
    catalog.transition("prod", BACKUP_ID, BackupState.RUNNING, now=now)
    catalog.transition("prod", BACKUP_ID, BackupState.COMPLETED, now=now)
    return {"queue_url": queue_url, "endpoint": moto_endpoint}


def chalice_command() -> str:
    """The chalice executable next to this interpreter (or on PATH)."""
    chalice = shutil.which("chalice", path=str(Path(sys.executable).parent)) or shutil.which("chalice")
    # chalice is a pinned dev dependency: a missing executable is a broken environment, not a reason to skip.
    assert chalice is not None, "the chalice command is not installed (it is a pinned dev dependency)"
    return chalice


def chalice_project(project: Path, app: Path) -> Path:
    """A project directory of its own: ``app`` and the library, plus a config naming no AWS account."""
    (project / "app.py").symlink_to(app)
    (project / "chalicelib").symlink_to(ROOT / "chalicelib")
    (project / ".chalice").mkdir()
    config = {"version": "2.0", "app_name": "lifeboat", "stages": {"dev": {"api_gateway_stage": "api"}}}
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    return project


@contextmanager
def chalice_local(project: Path, env: dict[str, str]) -> Iterator[str]:
    """``chalice local`` serving ``project``; its URL once it listens. A process that exits or never listens fails
    the test (an import error in app.py ends the process here, and must never look like a skip)."""
    port = free_port()
    log = project / "chalice-local.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                chalice_command(),
                "--project-dir",
                str(project),
                "local",
                "--no-autoreload",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"chalice local exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"chalice local did not listen within 30 s: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def local_env(aws_resources: dict[str, str]) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LIFEBOAT_"))},
        **FAKE_CREDENTIALS,
        "LIFEBOAT_TABLE": TABLE,
        "LIFEBOAT_BUCKET": "lifeboat-local",
        "LIFEBOAT_REGION": REGION,
        "LIFEBOAT_AWS_ENDPOINT_URL": aws_resources["endpoint"],
        "LIFEBOAT_RESTORE_QUEUE_URL": aws_resources["queue_url"],
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture(scope="module")
def local_api(aws_resources: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    project = chalice_project(tmp_path_factory.mktemp("chalice-project"), ROOT / "app.py")
    with chalice_local(project, local_env(aws_resources)) as url:
        yield url


def test_an_app_that_cannot_be_imported_fails_the_run_instead_of_skipping(
    aws_resources: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken_app.py"
    broken.write_text('raise ImportError("app.py cannot be imported")\n')
    (tmp_path / "project").mkdir()
    project = chalice_project(tmp_path / "project", broken)
    # Any outcome is caught, so a skip would be seen here as the wrong outcome rather than skip this test too.
    with pytest.raises(BaseException) as outcome, chalice_local(project, local_env(aws_resources)):  # noqa: PT011
        pass
    assert outcome.type is pytest.fail.Exception, outcome.type
    assert "chalice local exited" in str(outcome.value) and "app.py cannot be imported" in str(outcome.value)


def call(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """What ``curl -X POST --data-binary @body -H ...`` does."""
    request = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def queued(aws_resources: dict[str, str]) -> list[dict[str, Any]]:
    import boto3

    sqs = boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=aws_resources["endpoint"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
    )
    response = sqs.receive_message(QueueUrl=aws_resources["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
    for message in response.get("Messages", []):
        sqs.delete_message(QueueUrl=aws_resources["queue_url"], ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in response.get("Messages", [])]


BODY = json.dumps({"backup_id": BACKUP_ID, "target_cluster": TARGET, "options": {"namespace_mapping": {"a": "b"}}})


def test_signed_request_over_http_is_accepted_and_readable(local_api: str, aws_resources: dict[str, str]) -> None:
    body = BODY.encode()
    status, reply = call(f"{local_api}/v1/restores", data=body, headers=_signed(body))
    assert status == 202, reply
    assert reply["state"] == "Pending" and reply["status_url"] == f"/v1/restores/{reply['restore_id']}"
    assert queued(aws_resources) == [{"restore_id": reply["restore_id"]}]
    read = signed_headers(CLIENT_ID, SECRET, "GET", reply["status_url"])
    status, current = call(f"{local_api}{reply['status_url']}", headers=read)
    assert status == 200 and current["state"] == "Pending" and current["backup"]["backup_id"] == BACKUP_ID
    assert call(f"{local_api}{reply['status_url']}", headers=read)[0] == 401, "a signature works once"
    listing = signed_headers(CLIENT_ID, SECRET, "GET", "/v1/backups", query={"cluster": "prod"})
    status, page = call(f"{local_api}/v1/backups?cluster=prod", headers=listing)
    assert status == 200 and [b["backup_id"] for b in page["backups"]] == [BACKUP_ID]


def test_bad_signature_over_http_is_401_and_starts_nothing(local_api: str, aws_resources: dict[str, str]) -> None:
    body = BODY.encode()
    headers = _signed(body, secret="not-the-secret")
    status, reply = call(f"{local_api}/v1/restores", data=body, headers=headers)
    assert status == 401 and reply["error"] == "Unauthorized"
    assert call(f"{local_api}/v1/backups?cluster=prod")[0] == 401
    assert queued(aws_resources) == []


def _signed(body: bytes, *, t: float | None = None, key: str | None = None, secret: str = SECRET) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return signed_headers(CLIENT_ID, secret, "POST", "/v1/restores", body, t=t, **headers)


@pytest.mark.parametrize(
    ("case", "body", "when", "status"),
    [
        ("replayed timestamp", BODY.encode(), -600, 401),
        ("oversized body", b"{" + b" " * (64 * 1024) + b"}", 0, 413),
        ("malformed JSON", b"{not json", 0, 400),
        ("unknown field", json.dumps({"backup_id": BACKUP_ID, "target_cluster": TARGET, "x": 1}).encode(), 0, 422),
        (
            "unknown backup id",
            json.dumps({"backup_id": "20200101T000000Z-000000", "target_cluster": TARGET}).encode(),
            0,
            404,
        ),
    ],
)
def test_refused_requests_over_http_start_nothing(
    local_api: str, aws_resources: dict[str, str], case: str, body: bytes, when: int, status: int
) -> None:
    got, reply = call(f"{local_api}/v1/restores", data=body, headers=_signed(body, t=time.time() + when))
    assert got == status, (case, reply)
    assert queued(aws_resources) == [], case


def test_duplicate_idempotency_key_over_http_returns_the_same_restore(
    local_api: str, aws_resources: dict[str, str]
) -> None:
    body = BODY.encode()
    first = call(f"{local_api}/v1/restores", data=body, headers=_signed(body, key="deploy-42"))
    again = call(f"{local_api}/v1/restores", data=body, headers=_signed(body, key="deploy-42"))
    assert first[0] == again[0] == 202
    assert again[1]["restore_id"] == first[1]["restore_id"]
    assert queued(aws_resources) == [{"restore_id": first[1]["restore_id"]}], "one restore, one message"
