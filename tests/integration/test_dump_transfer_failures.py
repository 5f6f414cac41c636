"""A dump pod whose upload breaks first: both containers run here as processes sharing the emptyDir, the engine's
tool a fake ``pg_dump`` writing more than a pipe holds, and every part URL a port nothing listens on."""

from __future__ import annotations

from pathlib import Path

from chalicelib.core.dump_job import DumpRun, dump_job, upload_secret
from chalicelib.core.dumps import dumps_from_list
from tests.support.dump_pods import run_pod
from tests.support.ports import free_port

SPEC = dumps_from_list(
    [
        {
            "name": "orders",
            "engine": "postgres",
            "namespace": "shop",
            "target": "db",
            "databases": ["orders"],
            "credentials": {"secret": "db-auth", "password_key": "password"},
            "timeout": 60,
        }
    ]
)[0]


def _fake_pg_dump(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "pg_dump"
    tool.write_text(
        '#!/bin/bash\nif [ "${1:-}" = --version ]; then echo "pg_dump (PostgreSQL) 17.6"; exit 0; fi\n'
        "head -c 8388608 /dev/zero\n"
    )
    tool.chmod(0o755)
    return bin_dir


def test_an_upload_that_fails_first_is_named_and_not_the_engine_it_cut_off(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    run = DumpRun(
        "20261203T060000Z-0f0f0f",
        "dumps/shop/orders.pgdump",
        tuple(f"{nowhere}/part-{n}" for n in range(1, 5)),
        f"{nowhere}/report",
        part_size=1 << 20,
    )
    ran = run_pod(
        dump_job(SPEC, run, "db.shop.svc"),
        upload_secret(SPEC, run),
        tmp_path / "pod",
        app_secrets={"db-auth": {"password": "secret"}},
        path=str(_fake_pg_dump(tmp_path)),
        env={"LIFEBOAT_PORT": "5432"},
        timeout_s=60,
    )
    upload = ran["upload"]
    assert upload.returncode != 0
    assert "the upload failed" in upload.message, upload.message
    assert "the engine container's dump failed" not in upload.message, upload.message
    assert ran["dump"].returncode != 0, "the engine's stream was cut off: it must not report success"
    assert "the PUT of part 1 failed: curl: (7)" in upload.message, upload.message
