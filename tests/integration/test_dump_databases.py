"""The dump and restore Jobs' scripts, run here against real PostgreSQL and MariaDB, uploading to S3 (moto over HTTP)
through the presigned multipart URLs; the dump restored into a fresh database matches row for row."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.dump_job import dump_job, upload_secret
from chalicelib.core.dump_restore_job import RestoreTarget, restore_job, restore_secret
from chalicelib.core.dumps import DumpSpec, dumps_from_list
from chalicelib.repository.presigned import presigned_get
from chalicelib.repository.store import S3ObjectStore
from chalicelib.snapshots.dumps import DumpError, DumpUploads
from tests.support.databases import PASSWORD, Server, mariadb_server, moto_s3_store, mysql, postgres_server, psql
from tests.support.dump_pods import Ran, run_pod

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


def run_restore(
    spec: DumpSpec, store: S3ObjectStore, key: str, database: str, tmp: Path, server: Server, *, create: bool = False
) -> dict[str, Ran]:
    """The restore Job's two containers (downloader, engine) into ``database`` on ``server``; both must succeed."""
    target = RestoreTarget("shop", "db", database, port=server.port, create_database=create)
    url = presigned_get(store, key, expires_s=600)
    job = restore_job(BACKUP_ID, spec, target)
    ran = run_pod(
        job,
        restore_secret(BACKUP_ID, spec, target, url),
        tmp / f"restore-{database}",
        app_secrets=APP_SECRETS,
        path=server.bin_dir,
        env={"LIFEBOAT_HOST": server.host},
    )
    assert ran["restore"].returncode == 0 and ran["download"].returncode == 0, ran
    return ran


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


def dump(spec: DumpSpec, store: S3ObjectStore, tmp: Path, server: Server) -> tuple[Any, Any, dict[str, Ran]]:
    """The dump Job's two containers (engine, uploader) run at once against ``server``, uploading to ``store``."""
    uploads = DumpUploads(store, part_size=PART, max_size=PART * 8)
    run, upload = uploads.start(CLUSTER, BACKUP_ID, spec)
    job = dump_job(spec, run, server.host)
    ran = run_pod(job, upload_secret(spec, run), tmp / "dump", app_secrets=APP_SECRETS, path=server.bin_dir)
    return uploads, upload, ran


def succeeded(ran: dict[str, Ran]) -> bool:
    return all(r.returncode == 0 for r in ran.values())


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
    assert succeeded(done), done
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
    assert succeeded(done), done
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


def test_a_dump_whose_engine_fails_completes_nothing_and_names_the_engine_failure(
    pg: Server, store: S3ObjectStore, tmp_path: Path
) -> None:
    spec = dump_spec("postgres", "missing", pg, "no_such_database")

    uploads, upload, ran = dump(spec, store, tmp_path, pg)

    engine, uploader = ran["dump"], ran["upload"]
    assert engine.returncode == 1 and "no_such_database" in engine.stderr
    assert uploader.returncode != 0, "the uploader fails too: the pod (and the Job) fails"
    assert "the engine container's dump failed with exit status 1" in uploader.message
    assert "no_such_database" in uploader.message, "the termination message quotes the engine's tool"
    with pytest.raises(DumpError, match=r"dump shop/missing: the Job sent no report"):
        uploads.finish(spec, upload)
    uploads.abort(upload)
    assert not store.exists(upload.key)
    assert not list(store.list(upload.key))


def test_an_engine_image_without_its_tool_fails_both_containers_at_once(
    pg: Server, store: S3ObjectStore, tmp_path: Path
) -> None:
    spec = dump_spec("postgres", "notool", pg, "shop")
    uploads = DumpUploads(store, part_size=PART, max_size=PART * 8)
    run, upload = uploads.start(CLUSTER, BACKUP_ID, spec)
    # The engine's image as if it lacked pg_dump: a PATH with bash, head and sleep only.
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    for tool in ("bash", "head", "sleep"):
        (bare / tool).symlink_to(shutil.which(tool) or tool)
    ran = run_pod(
        dump_job(spec, run, pg.host),
        upload_secret(spec, run),
        tmp_path,
        app_secrets=APP_SECRETS,
        container_env={"dump": {"PATH": str(bare)}},
        timeout_s=60,
    )

    assert ran["dump"].returncode == 3 and "image has no pg_dump" in ran["dump"].stderr
    assert ran["upload"].returncode == 5 and "exit status 3" in ran["upload"].message
    uploads.abort(upload)
    assert not store.exists(upload.key)
