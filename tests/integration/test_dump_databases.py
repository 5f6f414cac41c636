"""The dump and restore Jobs' scripts, run here against real PostgreSQL and MariaDB, uploading to S3 (moto over HTTP)
through the presigned multipart URLs; the dump restored into a fresh database matches row for row."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.dump_job import dump_job, upload_secret
from chalicelib.core.dump_restore_job import restore_script
from chalicelib.core.dumps import DumpSpec, dumps_from_list
from chalicelib.repository.presigned import presigned_get
from chalicelib.repository.store import S3ObjectStore
from chalicelib.snapshots.dumps import DumpError, DumpUploads
from tests.support.databases import PASSWORD, Server, mariadb_server, moto_s3_store, mysql, postgres_server, psql

BUCKET = "dumps-test"
CLUSTER = "prod"
BACKUP_ID = "20261202T030000Z-d0d0d0"
PART = 5 << 20  # S3's smallest part: the test data makes each dump span at least two
APP_SECRETS = {"db-credentials": {"password": PASSWORD, "username": "lifeboat"}}
ROWS = 100_000


@pytest.fixture(scope="module")
def store() -> Iterator[S3ObjectStore]:
    with moto_s3_store(BUCKET) as found:
        yield found


@pytest.fixture(scope="module")
def pg() -> Iterator[Server]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def maria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with mariadb_server(tmp_path_factory.mktemp("maria")) as server:
        yield server


def run_container(job: dict[str, Any], secret: dict[str, Any], tmp: Path, server: Server) -> subprocess.Popen[str]:
    """Run the Job's container here: its command, its env (secretKeyRef read from APP_SECRETS), its Secret mounted."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    upload, work = tmp / "upload", tmp / "work"
    upload.mkdir()
    work.mkdir()
    for name, text in secret["stringData"].items():
        (upload / name).write_text(text)
    env = {"PATH": f"{server.bin_dir}:{os.environ['PATH']}"}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = APP_SECRETS[ref["name"]][ref["key"]]
    # The mounts' paths inside the pod are directories of this test here.
    env.update(LIFEBOAT_UPLOAD_DIR=str(upload), LIFEBOAT_WORK=str(work))
    return subprocess.run(container["command"], env=env, capture_output=True, text=True, timeout=300)  # type: ignore[return-value]


def run_restore(
    spec: DumpSpec, store: S3ObjectStore, key: str, database: str, tmp: Path, server: Server, *, create: bool = False
) -> None:
    url_file = tmp / "get-url"
    url_file.write_text(presigned_get(store, key, expires_s=600) + "\n")
    (tmp / "restore-work").mkdir(exist_ok=True)
    env = {
        "PATH": f"{server.bin_dir}:{os.environ['PATH']}",
        "LIFEBOAT_HOST": server.host,
        "LIFEBOAT_PORT": str(server.port),
        "LIFEBOAT_USER": server.user,
        "LIFEBOAT_PASSWORD": server.password,
        "LIFEBOAT_DATABASES": database,
        "LIFEBOAT_GET_URL_FILE": str(url_file),
        "LIFEBOAT_WORK": str(tmp / "restore-work"),
        **({"LIFEBOAT_CREATE_DATABASE": "1"} if create else {}),
    }
    done = subprocess.run(["bash", "-c", restore_script(spec)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def dump_spec(engine: str, name: str, server: Server, database: str, **extra: Any) -> DumpSpec:
    entry = {
        "name": name,
        "engine": engine,
        "namespace": "shop",
        "target": "db",
        "port": server.port,
        "credentials": {"secret": "db-credentials", "user_key": "username", "password_key": "password"},
        "databases": [database],
        **extra,
    }
    return dumps_from_list([entry])[0]


def dump(spec: DumpSpec, store: S3ObjectStore, tmp: Path, server: Server) -> tuple[Any, Any, Any]:
    uploads = DumpUploads(store, part_size=PART, max_size=PART * 8)
    run, upload = uploads.start(CLUSTER, BACKUP_ID, spec)
    done = run_container(dump_job(spec, run, server.host), upload_secret(spec, run), tmp, server)
    return uploads, upload, done


def test_postgres_dump_restores_into_a_fresh_database(pg: Server, store: S3ObjectStore, tmp_path: Path) -> None:
    psql(pg, "postgres", "CREATE DATABASE shop")
    psql(pg, "shop", "CREATE TABLE items (id bigint PRIMARY KEY, body text NOT NULL)")
    psql(
        pg,
        "shop",
        f"INSERT INTO items SELECT g, md5(g::text) || md5((g*7)::text) || md5(random()::text) "
        f"|| md5(random()::text) FROM generate_series(1, {ROWS}) g",
    )
    checksum = "SELECT count(*), md5(string_agg(id || ':' || body, ',' ORDER BY id)) FROM items"
    before = psql(pg, "shop", checksum)
    spec = dump_spec("postgres", "orders", pg, "shop")

    uploads, upload, done = dump(spec, store, tmp_path, pg)
    assert done.returncode == 0, done.stderr
    record = uploads.finish(spec, upload)

    assert record.state == "completed" and record.key == "dumps/shop/orders.pgdump"
    assert record.parts >= 2, "the dump should span several presigned parts"
    stored = store.get(upload.key)
    assert stored[:5] == b"PGDMP"  # pg_dump --format=custom
    assert (len(stored), hashlib.sha256(stored).hexdigest()) == (record.size, record.sha256)
    assert record.version.startswith("pg_dump (PostgreSQL)")
    assert not store.exists(upload.report_key)

    psql(pg, "postgres", "CREATE DATABASE shop_restored")
    run_restore(spec, store, upload.key, "shop_restored", tmp_path, pg)
    assert psql(pg, "shop_restored", checksum) == before
    # The verification's restore: into a scratch database the script creates itself.
    run_restore(spec, store, upload.key, "lifeboat_verify_ab12", tmp_path, pg, create=True)
    assert psql(pg, "lifeboat_verify_ab12", checksum) == before
    assert before.startswith(f"{ROWS}|")


def test_mysql_dump_restores_into_a_fresh_database(maria: Server, store: S3ObjectStore, tmp_path: Path) -> None:
    mysql(maria, "", "CREATE DATABASE shop")
    mysql(maria, "shop", "CREATE TABLE items (id BIGINT PRIMARY KEY, body TEXT NOT NULL) ENGINE=InnoDB")
    # MariaDB's Sequence engine: seq_1_to_N is a table of 1..N.
    mysql(
        maria,
        "shop",
        f"INSERT INTO items SELECT seq, CONCAT(MD5(seq), MD5(RAND()), MD5(RAND()), SHA2(RAND(), 256)) "
        f"FROM seq_1_to_{ROWS}",
    )
    checksum = "SELECT COUNT(*), SUM(CRC32(CONCAT(id, ':', body))), MD5(SUM(CRC32(body) * id)) FROM items"
    before = mysql(maria, "shop", checksum)
    spec = dump_spec("mysql", "catalog", maria, "shop")

    uploads, upload, done = dump(spec, store, tmp_path, maria)
    assert done.returncode == 0, done.stderr
    record = uploads.finish(spec, upload)

    assert record.state == "completed" and record.key == "dumps/shop/catalog.sql.gz"
    assert record.parts >= 2
    stored = store.get(upload.key)
    assert stored[:2] == b"\x1f\x8b"  # gzip
    assert (len(stored), hashlib.sha256(stored).hexdigest()) == (record.size, record.sha256)
    assert "mysqldump" in record.version

    mysql(maria, "", "CREATE DATABASE shop_restored")
    run_restore(spec, store, upload.key, "shop_restored", tmp_path, maria)
    assert mysql(maria, "shop_restored", checksum) == before
    run_restore(spec, store, upload.key, "lifeboat_verify_ab12", tmp_path, maria, create=True)
    assert mysql(maria, "lifeboat_verify_ab12", checksum) == before
    assert before.startswith(f"{ROWS}\t")


def test_a_dump_that_fails_leaves_nothing_and_names_the_dump(pg: Server, store: S3ObjectStore, tmp_path: Path) -> None:
    spec = dump_spec("postgres", "missing", pg, "no_such_database")

    uploads, upload, done = dump(spec, store, tmp_path, pg)

    assert done.returncode != 0
    assert "no_such_database" in done.stderr
    with pytest.raises(DumpError, match=r"dump shop/missing: the Job sent no report"):
        uploads.finish(spec, upload)
    assert not store.exists(upload.key)
    assert not list(store.list(upload.key))
