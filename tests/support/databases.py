"""Real PostgreSQL and MariaDB servers from Debian's packages, started in a temp dir for one test module."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from chalicelib.repository.store import S3ObjectStore
from tests.support.ports import free_port

PASSWORD = "dump-test-secret"
INSTALL = "apt-get install -y postgresql mariadb-server; .ci/run installs them"


@dataclass(frozen=True)
class Server:
    """A running database server: how to reach it, and how to run its client as the admin user."""

    engine: str
    host: str
    port: int
    user: str
    password: str
    bin_dir: str  # where its client tools are (put first on PATH for a script)


def _require(path: str | None, what: str) -> str:
    """A test that needs the binary fails (never skips) when it is missing."""
    if not path or not os.path.exists(path):
        pytest.fail(f"{what} is not installed ({INSTALL})")
    return path


def postgres_bin_dir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(_require(found[-1] if found else None, "PostgreSQL (pg_ctl)"))


def _as_postgres(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    # initdb and postgres refuse to run as root; as another user they run as that user.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    done = subprocess.run(prefix + args, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        pytest.fail(f"{' '.join(args[:1])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


@contextmanager
def postgres_server() -> Iterator[Server]:
    """A server in a temp dir of its own: pytest's are private to root, and postgres must not run as root."""
    bin_dir = postgres_bin_dir()
    tmp = Path(tempfile.mkdtemp(prefix="lifeboat-pg-"))
    data, sock = tmp / "pgdata", tmp / "pgsock"
    sock.mkdir()
    (tmp / "pwfile").write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for p in (tmp, sock, tmp / "pwfile"):
            os.chown(p, owner.pw_uid, owner.pw_gid)
    port = free_port()
    _as_postgres(
        [
            f"{bin_dir}/initdb",
            "-D",
            str(data),
            "-U",
            "lifeboat",
            "--auth=scram-sha-256",
            f"--pwfile={tmp / 'pwfile'}",
            "--no-sync",
        ]
    )
    _as_postgres(
        [
            f"{bin_dir}/pg_ctl",
            "-D",
            str(data),
            "-l",
            str(tmp / "pg.log"),
            "-w",
            "start",
            "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
        ]
    )
    try:
        yield Server("postgres", "127.0.0.1", port, "lifeboat", PASSWORD, bin_dir)
    finally:
        _as_postgres([f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(tmp, ignore_errors=True)


def psql(server: Server, database: str, sql: str) -> str:
    env = {**os.environ, "PGPASSWORD": server.password}
    out = subprocess.run(
        [
            f"{server.bin_dir}/psql",
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-U",
            server.user,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tA",
            "-c",
            sql,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode != 0:
        pytest.fail(f"psql {sql[:80]!r}: {out.stderr.strip()}")
    return out.stdout.strip()


@contextmanager
def mariadb_server(tmp: Path) -> Iterator[Server]:
    server_bin = _require(shutil.which("mariadbd") or "/usr/sbin/mariadbd", "MariaDB (mariadbd)")
    install = _require(shutil.which("mariadb-install-db"), "MariaDB (mariadb-install-db)")
    client = _require(shutil.which("mariadb") or shutil.which("mysql"), "the MariaDB client")
    data, sock = tmp / "mydata", tmp / "my.sock"
    user = pwd.getpwuid(os.geteuid()).pw_name
    common = ["--no-defaults", f"--datadir={data}", f"--user={user}"]
    subprocess.run(
        [install, *common, "--auth-root-authentication-method=socket", "--skip-test-db"],
        check=True,
        capture_output=True,
        text=True,
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            server_bin,
            *common,
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={tmp / 'my.pid'}",
            f"--log-error={tmp / 'my.err'}",
            "--skip-log-bin",
            "--innodb-flush-log-at-trx-commit=0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            ok = subprocess.run([client, f"--socket={sock}", "-uroot", "-e", "SELECT 1"], capture_output=True)
            if ok.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (tmp / "my.err").read_text() if (tmp / "my.err").exists() else ""
                pytest.fail(f"mariadbd did not start: {log[-2000:]}")
            time.sleep(0.2)
        subprocess.run(
            [
                client,
                f"--socket={sock}",
                "-uroot",
                "-e",
                f"CREATE USER 'lifeboat'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON *.* TO 'lifeboat'@'%';",
            ],
            check=True,
            capture_output=True,
        )
        yield Server("mysql", "127.0.0.1", port, "lifeboat", PASSWORD, os.path.dirname(client))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def mysql(server: Server, database: str, sql: str) -> str:
    client = shutil.which("mariadb") or shutil.which("mysql") or "mysql"
    out = subprocess.run(
        [
            client,
            "-h",
            server.host,
            "-P",
            str(server.port),
            "-u",
            server.user,
            "-N",
            "-B",
            *([database] if database else []),
            "-e",
            sql,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MYSQL_PWD": server.password},
    )
    if out.returncode != 0:
        pytest.fail(f"mariadb {sql[:80]!r}: {out.stderr.strip()}")
    return out.stdout.strip()


@contextmanager
def moto_s3_store(bucket: str) -> Iterator[S3ObjectStore]:
    """A repository store in moto's S3 over real HTTP, so curl can PUT to presigned URLs."""
    import boto3
    from botocore.config import Config
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(signature_version="s3v4"),
    )
    client.create_bucket(Bucket=bucket)
    try:
        yield S3ObjectStore(client, bucket)
    finally:
        server.stop()
