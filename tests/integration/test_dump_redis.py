"""The redis dump and restore Jobs' containers run here against real redis-servers: ``redis-cli --rdb`` through the
uploader to S3 (moto over HTTP), then the RDB through the downloader into a second, fresh server, key for key."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.core.dump_job import dump_job, upload_secret
from chalicelib.core.dump_restore_job import RestoreTarget, restore_job, restore_secret
from chalicelib.core.dumps import dumps_from_list
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


@pytest.fixture(scope="module")
def store() -> Iterator[S3ObjectStore]:
    with moto_s3_store(BUCKET) as found:
        yield found


def test_a_redis_dump_restores_every_database_key_for_key(store: S3ObjectStore, tmp_path: Path) -> None:
    spec = dumps_from_list(
        [
            {
                "name": "cache",
                "engine": "redis",
                "namespace": "shop",
                "target": "redis",
                "credentials": {"secret": "cache-auth", "password_key": "password"},
                "timeout": 120,
            }
        ]
    )[0]
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
