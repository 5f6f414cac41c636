"""The redis dump and restore Jobs' containers run here against real redis-servers: ``redis-cli --rdb`` through the
uploader to S3 (moto over HTTP), then the RDB through the downloader into a second, fresh server, key for key."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.core.dump_job import dump_job, upload_secret
from chalicelib.core.dump_restore_job import RestoreTarget, restore_job, restore_secret
from chalicelib.core.dumps import DumpSpec, dumps_from_list
from chalicelib.repository.presigned import presigned_get
from chalicelib.repository.store import S3ObjectStore
from chalicelib.snapshots.dumps import DumpUploads
from tests.support.databases import PASSWORD, moto_s3_store
from tests.support.dump_pods import run_pod
from tests.support.ports import free_port
from tests.support.redis import redis_cli, redis_contents, redis_server

BUCKET = "dumps-redis"
BACKUP_ID = "20261202T030000Z-7ed157"
APP_SECRETS = {"cache-auth": {"password": PASSWORD}}


def _spec(name: str, *, timeout: int) -> DumpSpec:
    """A redis dump of the ``redis`` Service in ``shop``, its password in the ``cache-auth`` Secret."""
    entry = {
        "name": name,
        "engine": "redis",
        "namespace": "shop",
        "target": "redis",
        "credentials": {"secret": "cache-auth", "password_key": "password"},
        "timeout": timeout,
    }
    return dumps_from_list([entry])[0]


@pytest.fixture(scope="module")
def store() -> Iterator[S3ObjectStore]:
    with moto_s3_store(BUCKET) as found:
        yield found


def test_a_redis_dump_restores_every_database_key_for_key(store: S3ObjectStore, tmp_path: Path) -> None:
    spec = _spec("cache", timeout=120)
    with redis_server(tmp_path / "source") as source, redis_server(tmp_path / "copy") as copy:
        for i in range(200):
            redis_cli(source, 0, "SET", f"user:{i}", f'name {i} "quoted" \\ back')
        redis_cli(source, 0, "HSET", "cart:7", "sku-1", "2", "sku-9", "1")
        redis_cli(source, 0, "RPUSH", "queue", "c", "a", "b")
        redis_cli(source, 3, "SADD", "tags", "x", "y", "z")
        redis_cli(source, 3, "ZADD", "rank", "1.5", "ann", "3", "bob")
        redis_cli(source, 3, "SET", "key with spaces", "v")
        before = redis_contents(source, range(4))
        assert len(before[0]) == 202 and len(before[3]) == 3 and before[1] == {} == before[2]

        uploads = DumpUploads(store, part_size=5 << 20, max_size=40 << 20)
        run, upload = uploads.start("prod", BACKUP_ID, spec)
        ran = run_pod(
            dump_job(spec, run, source.host),
            upload_secret(spec, run),
            tmp_path / "dump",
            app_secrets=APP_SECRETS,
            env={"LIFEBOAT_PORT": str(source.port)},
            timeout_s=120,
        )
        assert all(r.returncode == 0 for r in ran.values()), ran
        record = uploads.finish(spec, upload)
        stored = store.get(upload.key)
        assert record.state == "completed" and record.key == "dumps/shop/cache.rdb"
        assert stored[:5] == b"REDIS"
        assert (len(stored), hashlib.sha256(stored).hexdigest()) == (record.size, record.sha256)
        assert record.version.startswith("redis-cli ")

        target = RestoreTarget("shop", "redis-copy", port=copy.port)
        ran = run_pod(
            restore_job(BACKUP_ID, spec, target),
            restore_secret(BACKUP_ID, spec, target, presigned_get(store, upload.key, expires_s=600)),
            tmp_path / "restore",
            app_secrets=APP_SECRETS,
            env={"LIFEBOAT_HOST": copy.host, "LIFEBOAT_SCRATCH_PORT": str(free_port())},
            timeout_s=120,
        )
        assert all(r.returncode == 0 for r in ran.values()), ran
        assert "lifeboat: 205 keys restored" in ran["restore"].stdout
        assert redis_contents(copy, range(4)) == before


def test_a_restore_whose_target_refuses_fails_and_stops_its_scratch_server(
    store: S3ObjectStore, tmp_path: Path
) -> None:
    spec = _spec("sessions", timeout=60)
    with redis_server(tmp_path / "source") as source:
        redis_cli(source, 0, "SET", "k", "v")
        redis_cli(source, 0, "SAVE")
        store.put("dumps/shop/sessions.rdb", (tmp_path / "source" / "dump.rdb").read_bytes())
    scratch_port = free_port()
    target = RestoreTarget("shop", "redis-gone", port=free_port())  # nothing listens there
    ran = run_pod(
        restore_job(BACKUP_ID, spec, target),
        restore_secret(BACKUP_ID, spec, target, presigned_get(store, "dumps/shop/sessions.rdb", expires_s=600)),
        tmp_path / "restore",
        app_secrets=APP_SECRETS,
        env={"LIFEBOAT_HOST": "127.0.0.1", "LIFEBOAT_SCRATCH_PORT": str(scratch_port)},
        timeout_s=60,
    )
    assert ran["restore"].returncode != 0
    assert "MIGRATE into 127.0.0.1" in ran["restore"].stderr, ran["restore"].stderr
    scratch = subprocess.run(["redis-cli", "-p", str(scratch_port), "ping"], capture_output=True, text=True)
    assert "PONG" not in scratch.stdout, "the scratch redis-server outlived its restore"
