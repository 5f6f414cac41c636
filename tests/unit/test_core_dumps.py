"""The dumps block of a policy, and each engine's dump Job, Secret and scripts, as data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.dump_job import (
    UPLOAD_MOUNT,
    WORK_MOUNT,
    DumpRun,
    dump_job,
    dump_script,
    job_name,
    upload_script,
    upload_secret,
)
from chalicelib.core.dump_restore_job import download_script, restore_script
from chalicelib.core.dumps import (
    DEFAULT_IMAGES,
    DEFAULT_UPLOADER_IMAGE,
    ENGINES,
    DumpSpec,
    dumps_from_list,
    parse_dumps,
)
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
    engine_container, uploader = pod["containers"]
    assert (engine_container["name"], uploader["name"]) == ("dump", "upload")
    assert engine_container["image"] == DEFAULT_IMAGES[engine]
    assert engine_container["command"] == ["bash", "-c", dump_script(spec)]
    assert uploader["image"] == DEFAULT_UPLOADER_IMAGE == "docker.io/library/buildpack-deps:bookworm-curl"
    assert uploader["command"] == ["bash", "-c", upload_script(spec)]
    env = {e["name"]: e for e in engine_container["env"]}
    assert env["LIFEBOAT_HOST"]["value"] in ("10.0.0.7", f"{spec.service}.{spec.namespace}.svc")
    if spec.credentials:
        assert env["LIFEBOAT_PASSWORD"] == {
            "name": "LIFEBOAT_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}},
        }
        assert env["LIFEBOAT_USER"]["valueFrom"]["secretKeyRef"] == {"name": "db-credentials", "key": "username"}
    up_env = {e["name"]: e.get("value") for e in uploader["env"]}
    assert up_env["LIFEBOAT_UPLOAD_DIR"] == UPLOAD_MOUNT and up_env["LIFEBOAT_PART_SIZE"] == str(run.part_size)
    # Each container sees only what it needs: the database credentials never reach the uploader, the URLs never the
    # engine; both share the emptyDir and keep the dump's timeout.
    assert not {"LIFEBOAT_PASSWORD", "LIFEBOAT_USER", "LIFEBOAT_HOST"} & set(up_env)
    assert "LIFEBOAT_UPLOAD_DIR" not in env
    for container in (engine_container, uploader):
        values = {e["name"]: e.get("value") for e in container["env"]}
        assert values["LIFEBOAT_WORK"] == WORK_MOUNT and values["LIFEBOAT_TIMEOUT"] == str(spec.timeout_s)
        assert {"name": "work", "mountPath": WORK_MOUNT} in container["volumeMounts"]
        assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert [m["name"] for m in engine_container["volumeMounts"]] == ["work"]
    # No credential of any kind is in the Job itself: the URLs are in the run's Secret, mounted read-only.
    assert "X-Amz-Signature" not in repr(job)
    assert "AWS_" not in repr(job) and "aws_access_key" not in repr(job).lower()
    assert {"name": "upload", "secret": {"secretName": name, "defaultMode": 0o400}} in pod["volumes"]
    assert {"name": "work", "emptyDir": {}} in pod["volumes"]
    assert {"name": "upload", "mountPath": UPLOAD_MOUNT, "readOnly": True} in uploader["volumeMounts"]


def test_a_policy_names_its_uploader_image_and_a_bad_one_is_named() -> None:
    spec = spec_of("postgres", uploader_image="registry.local/tools/curl:8")
    assert dumps_from_list([spec.to_dict()])[0] == spec
    job = dump_job(spec, run_of(spec), "db.shop.svc")
    images = [c["image"] for c in job["spec"]["template"]["spec"]["containers"]]
    assert images == ["postgres:16-bookworm", "registry.local/tools/curl:8"]
    assert "uploader_image" not in spec_of("postgres").to_dict()
    specs, problems = parse_dumps([{**ENTRIES["postgres"], "uploader_image": 7}])
    assert specs is None and problems[0].startswith("dumps[0].uploader_image: must be an image reference")


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
        ("mysql", ["mysqldump --single-transaction", 'MYSQL_PWD="${LIFEBOAT_PASSWORD:-}"']),
        ("mongodb", ["mongodump --archive --gzip", '--config="$LIFEBOAT_WORK/mongo.yaml"']),
        ("redis", ["redis-cli -h", "--rdb", 'REDISCLI_AUTH="${LIFEBOAT_PASSWORD:-}"']),
        ("elasticsearch", ["_snapshot/lifeboat/$LIFEBOAT_SNAPSHOT?wait_for_completion=true"]),
    ],
)
def test_the_engine_runs_only_its_tool_into_the_fifo_and_the_uploader_streams_it_through_the_parts(
    engine: str, expected: list[str]
) -> None:
    spec = spec_of(engine)
    script, upload = dump_script(spec), upload_script(spec)
    assert script.startswith("set -euo pipefail\n") and upload.startswith("set -euo pipefail\n")
    for text in expected:
        assert text in script and text not in upload
    assert 'lifeboat_dump > "$W/dump.fifo"' in script
    assert 'trap \'echo "$?" > "$W/engine.status"\' EXIT' in script
    if engine != "elasticsearch":  # its tool is the HTTP API: curl is its engine
        assert "curl" not in script, "the engine's official image has no curl"
    # Streamed: split into parts as it comes, hashed on the way, each part PUT by curl to its URL.
    assert 'tee "$W/hash" "$W/count"' in upload and "sha256sum" in upload
    assert 'split --bytes="${LIFEBOAT_PART_SIZE:?}"' in upload
    assert 'curl -fsS --retry 3 --retry-all-errors -o /dev/null -T "$LIFEBOAT_WORK/part" "$url"' in upload
    assert '"$(head -n 1 "$U/report")"' in upload
    # The report (what makes Lifeboat complete the upload) goes only after the engine's status was 0.
    assert upload.index('if [ "$engine" != 0 ]') < upload.index('"$(head -n 1 "$U/report")"')
    assert ("lifeboat_filter() { gzip -c; }" in upload) == (engine == "mysql")
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
def test_the_restore_engine_reads_the_fifo_the_downloader_fills_from_the_presigned_get(engine: str, tool: str) -> None:
    spec = spec_of(engine)
    script, download = restore_script(spec), download_script(spec)
    assert tool in script and tool not in download
    assert 'lifeboat_restore < "$W/restore.fifo" &' in script
    assert 'curl -fsS --retry 3 "$(head -n 1 "${LIFEBOAT_GET_URL_FILE:?}")" | lifeboat_filter' in download
    assert ("lifeboat_filter() { gunzip -c; }" in download) == (engine == "mysql")
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


def _bin(tmp_path: Path, tools: tuple[str, ...], fakes: tuple[str, ...] = ()) -> Path:
    """A PATH of its own: symlinks to these tools, and fakes that print nothing."""
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    for fake in fakes:
        (bin_dir / fake).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / fake).chmod(0o755)
    return bin_dir


def _run(bin_dir: Path, script: str, work: Path, **env: str) -> Any:
    import subprocess

    work.mkdir(exist_ok=True)
    env = {"PATH": str(bin_dir), "LIFEBOAT_WORK": str(work), "LIFEBOAT_TIMEOUT": "2", **env}
    return subprocess.run([str(bin_dir / "bash"), "-c", script], env=env, capture_output=True, text=True, timeout=30)


COREUTILS = (
    "bash",
    "sha256sum",
    "split",
    "mkfifo",
    "cat",
    "rm",
    "date",
    "wc",
    "tr",
    "cut",
    "head",
    "tail",
    "sed",
    "tee",
)


@pytest.mark.parametrize("which", ["upload", "download"])
def test_an_uploader_image_without_curl_fails_at_once_naming_it(tmp_path: Path, which: str) -> None:
    spec = spec_of("postgres")
    script = upload_script(spec) if which == "upload" else download_script(spec)
    ran = _run(_bin(tmp_path, (*COREUTILS, "sleep")), script, tmp_path / "work")
    assert ran.returncode == 3
    assert f"the {which} container's image has no curl" in ran.stderr
    status = {"upload": "uploader.status", "download": "download.status"}[which]
    assert (tmp_path / "work" / status).read_text() == "3\n", "the status the engine container watches"


def test_the_engine_container_needs_no_curl_and_gives_up_when_no_uploader_comes(tmp_path: Path) -> None:
    # The official postgres image: bash, coreutils and pg_dump, no curl.
    bin_dir = _bin(tmp_path, ("bash", "head", "sleep"), fakes=("pg_dump",))
    ran = _run(bin_dir, dump_script(spec_of("postgres")), tmp_path / "work")
    assert ran.returncode == 4, ran.stderr
    assert "has no" not in ran.stderr
    assert "the uploader container did not open" in ran.stderr
    assert (tmp_path / "work" / "engine.status").read_text() == "4\n", "the status the uploader would wait for"


def test_an_engine_image_without_its_tool_fails_naming_it(tmp_path: Path) -> None:
    ran = _run(_bin(tmp_path, ("bash", "head", "sleep")), restore_script(spec_of("postgres")), tmp_path / "work")
    assert ran.returncode == 3 and "the restore container's image has no pg_restore" in ran.stderr
