"""The dumps block of a policy, and each engine's dump Job, Secret and scripts, as data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.dump_job import UPLOAD_MOUNT, DumpRun, dump_job, dump_script, job_name, upload_secret
from chalicelib.core.dump_restore_job import restore_script
from chalicelib.core.dumps import DEFAULT_IMAGES, ENGINES, DumpSpec, dumps_from_list, parse_dumps
from chalicelib.core.errors import InvalidPolicy
from chalicelib.core.jobs import BackupJob, ClusterRef
from chalicelib.core.policies import Policy

BACKUP = "20261202T030000Z-abc123"
CREDS = {"secret": "db-credentials", "password_key": "password", "user_key": "username"}
ENTRIES: dict[str, dict[str, Any]] = {
    "postgres": {
        "engine": "postgres",
        "namespace": "shop",
        "target": "db",
        "credentials": CREDS,
        "databases": ["shop"],
    },
    "mysql": {"engine": "mysql", "namespace": "shop", "target": {"service": "mysql"}, "credentials": CREDS},
    "mongodb": {"engine": "mongodb", "namespace": "shop", "target": {"selector": "app=mongo"}, "credentials": CREDS},
    "redis": {"engine": "redis", "namespace": "cache", "target": "redis"},
    "elasticsearch": {"engine": "elasticsearch", "namespace": "logs", "target": "es", "databases": ["logs-*"]},
}


def spec_of(engine: str, **extra: Any) -> DumpSpec:
    return dumps_from_list([{**ENTRIES[engine], **extra}])[0]


def run_of(spec: DumpSpec) -> DumpRun:
    urls = tuple(f"https://bucket.s3.amazonaws.com/k?partNumber={n}&X-Amz-Signature=s{n}" for n in (1, 2, 3))
    return DumpRun(
        BACKUP,
        f"clusters/prod/backups/{BACKUP}/dumps/{spec.namespace}/{spec.file_name}",
        urls,
        "https://bucket.s3.amazonaws.com/k.report.json?X-Amz-Signature=r",
        5 << 20,
    )


def test_a_full_entry_parses_and_round_trips() -> None:
    entry = {
        "name": "orders",
        "engine": "postgres",
        "namespace": "shop",
        "target": {"service": "db", "port": 6432},
        "credentials": {"secret": "pg", "password_key": "pw", "user": "app"},
        "databases": ["orders"],
        "image": "registry.example/pg:16",
        "schedule": "with-every-backup",
        "timeout": 900,
    }
    spec = dumps_from_list([entry])[0]
    assert (spec.name, spec.engine, spec.service, spec.effective_port, spec.timeout_s) == (
        "orders",
        "postgres",
        "db",
        6432,
        900,
    )
    assert spec.file_name == "orders.pgdump"
    assert spec.service_host() == "db.shop.svc"
    assert dumps_from_list([spec.to_dict()]) == (spec,)


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_has_defaults_and_an_extension(engine: str) -> None:
    spec = spec_of(engine)
    assert spec.effective_image == DEFAULT_IMAGES[engine]
    assert spec.name.startswith(engine)
    assert spec.file_name.endswith(
        {
            "postgres": ".pgdump",
            "mysql": ".sql.gz",
            "mongodb": ".archive.gz",
            "redis": ".rdb",
            "elasticsearch": ".snapshot.json",
        }[engine]
    )


def test_every_problem_is_named_with_where_it_is() -> None:
    entries = [
        {"engine": "oracle", "namespace": "shop", "target": "db"},
        {"engine": "postgres", "namespace": "Shop!", "target": {"service": "a", "selector": "b"}, "extra": 1},
        {
            "engine": "postgres",
            "namespace": "shop",
            "target": "db",
            "credentials": CREDS,
            "databases": ["a", "b"],
            "schedule": "0 * * * *",
            "timeout": 0,
            "port": 70000,
        },
        {"engine": "redis", "namespace": "c", "target": "r", "databases": ["0"], "credentials": {"user": "x"}},
        {"engine": "mysql", "namespace": "shop", "target": {"selector": "app in ("}, "credentials": CREDS},
    ]
    specs, problems = parse_dumps(entries, "policies[0].dumps")
    assert specs is None
    text = "\n".join(problems)
    for expected in (
        "policies[0].dumps[0].engine: must be one of postgres, mysql, mongodb, redis, elasticsearch; got 'oracle'",
        "policies[0].dumps[1]: unknown fields extra",
        "policies[0].dumps[1].namespace: must be the application's namespace name; got 'Shop!'",
        "policies[0].dumps[1].target: must be a Service name",
        "policies[0].dumps[1].credentials: postgres needs",
        "policies[0].dumps[1].databases: postgres needs the one database",
        "policies[0].dumps[2].databases: postgres dumps one database per entry",
        "policies[0].dumps[2].schedule: only 'with-every-backup' is supported; got '0 * * * *'",
        "policies[0].dumps[2].timeout: must be a number of seconds from 1 to 21600; got 0",
        "policies[0].dumps[2].port: must be a TCP port number; got 70000",
        "policies[0].dumps[3].databases: redis dumps every database in one RDB file",
        "policies[0].dumps[3].credentials: must be {secret, password_key, user_key or user}",
        "policies[0].dumps[4].target.selector: must be a non-empty label selector",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    with pytest.raises(InvalidPolicy):
        dumps_from_list(entries)


def test_names_must_be_unique_per_namespace_and_the_block_a_list() -> None:
    twice = [ENTRIES["postgres"], {**ENTRIES["postgres"], "databases": ["other"]}]
    specs, problems = parse_dumps(twice)
    assert specs is None
    assert problems == ["dumps[1]: shop/postgres-db is also dumps[0]; names must differ"]
    assert parse_dumps({"engine": "postgres"})[1][0].startswith("dumps: must be a list")
    assert parse_dumps(None) == ((), [])


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_job_is_ephemeral_labelled_and_reads_credentials_from_the_secret(engine: str) -> None:
    spec = spec_of(engine)
    run = run_of(spec)
    job = dump_job(spec, run, "10.0.0.7" if spec.selector else str(spec.service_host()))
    name = job_name(BACKUP, spec)

    assert job["kind"] == "Job" and job["apiVersion"] == "batch/v1"
    assert job["metadata"]["namespace"] == spec.namespace
    assert job["metadata"]["labels"]["lifeboat.io/backup-id"] == BACKUP
    assert job["metadata"]["labels"]["lifeboat.io/dump"] == spec.name
    assert len(name) <= 63 and name.startswith(f"lifeboat-dump-{spec.name}-")
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["activeDeadlineSeconds"] == spec.timeout_s
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["image"] == DEFAULT_IMAGES[engine]
    assert container["command"] == ["bash", "-c", dump_script(spec)]
    env = {e["name"]: e for e in container["env"]}
    assert env["LIFEBOAT_HOST"]["value"] in ("10.0.0.7", f"{spec.service}.{spec.namespace}.svc")
    if spec.credentials:
        assert env["LIFEBOAT_PASSWORD"] == {
            "name": "LIFEBOAT_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}},
        }
        assert env["LIFEBOAT_USER"]["valueFrom"]["secretKeyRef"] == {"name": "db-credentials", "key": "username"}
    # No credential of any kind is in the Job itself: the URLs are in the run's Secret, mounted read-only.
    assert "X-Amz-Signature" not in repr(job)
    assert {"name": "upload", "secret": {"secretName": name, "defaultMode": 0o400}} in pod["volumes"]
    assert {"name": "upload", "mountPath": UPLOAD_MOUNT, "readOnly": True} in container["volumeMounts"]


def test_the_run_secret_holds_one_url_a_line_and_the_report_url() -> None:
    spec = spec_of("postgres")
    run = run_of(spec)
    secret = upload_secret(spec, run)
    assert secret["metadata"]["name"] == job_name(BACKUP, spec)
    assert secret["metadata"]["labels"]["lifeboat.io/backup-id"] == BACKUP
    assert secret["stringData"]["parts"].splitlines() == list(run.part_urls)
    assert secret["stringData"]["report"].strip() == run.report_url


def test_a_job_name_is_per_backup_and_dump() -> None:
    spec = spec_of("postgres")
    assert job_name(BACKUP, spec) != job_name("20261202T040000Z-abc123", spec)
    assert job_name(BACKUP, spec) != job_name(BACKUP, spec_of("postgres", name="other"))


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ("postgres", ["pg_dump --format=custom", 'PGPASSWORD="${LIFEBOAT_PASSWORD:-}"']),
        ("mysql", ["mysqldump --single-transaction", 'MYSQL_PWD="${LIFEBOAT_PASSWORD:-}"', "gzip -c"]),
        ("mongodb", ["mongodump --archive --gzip", '--config="$LIFEBOAT_WORK/mongo.yaml"']),
        ("redis", ["redis-cli -h", "--rdb", 'REDISCLI_AUTH="${LIFEBOAT_PASSWORD:-}"']),
        ("elasticsearch", ["_snapshot/lifeboat/$LIFEBOAT_SNAPSHOT?wait_for_completion=true"]),
    ],
)
def test_each_engine_script_runs_its_own_tool_and_streams_through_the_presigned_parts(
    engine: str, expected: list[str]
) -> None:
    script = dump_script(spec_of(engine))
    assert script.startswith("set -euo pipefail\n")
    for text in expected:
        assert text in script
    # Streamed: split into parts as it comes, hashed on the way, each part PUT by curl to its URL.
    assert 'tee "$W/hash" "$W/count"' in script and "sha256sum" in script
    assert 'split --bytes="${LIFEBOAT_PART_SIZE:?}"' in script
    assert 'curl -fsS --retry 3 --retry-all-errors -o /dev/null -T "$LIFEBOAT_WORK/part" "$url"' in script
    assert '"$(head -n 1 "$U/report")"' in script
    # A password never appears on a command line.
    assert "--password" not in script and "-p$" not in script


@pytest.mark.parametrize(
    ("engine", "tool"),
    [
        ("postgres", "pg_restore"),
        ("mysql", "mysql --host"),
        ("mongodb", "mongorestore --archive --gzip"),
        ("redis", "MIGRATE"),
        ("elasticsearch", "/_restore?wait_for_completion=true"),
    ],
)
def test_the_restore_script_pipes_the_presigned_get_into_the_engine_tool(engine: str, tool: str) -> None:
    script = restore_script(spec_of(engine))
    assert tool in script
    assert script.rstrip().endswith("| lifeboat_restore")
    assert "--password" not in script


def test_a_policy_with_dumps_round_trips_and_names_bad_entries() -> None:
    doc = {
        "name": "shop",
        "cluster": "prod",
        "schedule": {"cron": "0 * * * *"},
        "scope": {"include_namespaces": ["shop"]},
        "dumps": [
            {
                "engine": "postgres",
                "namespace": "shop",
                "target": "db",
                "databases": ["shop"],
                "credentials": {"secret": "pg"},
            }
        ],
    }
    policy = Policy.from_dict(doc)
    assert [d.name for d in policy.dumps] == ["postgres-db"]
    assert Policy.from_dict(policy.to_dict()) == policy
    job = BackupJob("j", ClusterRef("prod", {"type": "eks", "cluster_name": "prod"}), dumps=policy.dumps)
    assert BackupJob.from_dict(job.to_dict()).dumps == policy.dumps
    with pytest.raises(InvalidPolicy, match=r"^policy \(shop\)\.dumps\[0\]\.engine: must be one of .*; got 'db2'$"):
        Policy.from_dict({**doc, "dumps": [{"engine": "db2", "namespace": "shop", "target": "db"}]})


@pytest.mark.parametrize("which", ["dump", "restore"])
def test_an_image_without_curl_fails_at_once_naming_it(tmp_path: Path, which: str) -> None:
    import shutil
    import subprocess

    from chalicelib.core.dump_job import dump_script
    from chalicelib.core.dump_restore_job import restore_script

    # A PATH with bash and coreutils but no curl, as in an engine's official image.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sha256sum", "split", "mkfifo", "cat", "rm", "date", "wc", "tr", "cut", "head", "sed"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    spec = spec_of("postgres")
    script = dump_script(spec) if which == "dump" else restore_script(spec)
    ran = subprocess.run(
        [str(bin_dir / "bash"), "-c", script], env={"PATH": str(bin_dir)}, capture_output=True, text=True, timeout=30
    )
    assert ran.returncode == 3
    assert "the image has no curl" in ran.stderr
