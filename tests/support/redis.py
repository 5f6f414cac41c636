"""A real redis-server from Debian's package, started on a free port in a temp dir (no daemon, no config file)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.databases import PASSWORD, Server
from tests.support.ports import free_port


@contextmanager
def redis_server(tmp: Path, password: str = PASSWORD) -> Iterator[Server]:
    """A server that needs ``password`` (AUTH), saving nothing on its own; the test fails when redis is missing."""
    binary = shutil.which("redis-server")
    if not binary or not shutil.which("redis-cli"):
        pytest.fail("redis-server is not installed (apt-get install -y redis-server; .ci/run installs it)")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp), "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*args, "--requirepass", password, "--logfile", str(tmp / "redis.log"), "--daemonize", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server("redis", "127.0.0.1", port, "", password, str(Path(binary).parent))
    try:
        deadline = time.monotonic() + 30
        while redis_cli(server, 0, "PING", check=False) != "PONG":
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (tmp / "redis.log").read_text() if (tmp / "redis.log").exists() else ""
                pytest.fail(f"redis-server did not start: {log[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def redis_cli(server: Server, db: int, *command: str, check: bool = True) -> str:
    """One command's answer as ``--raw`` prints it, in database ``db`` (the password by REDISCLI_AUTH, not argv)."""
    done = subprocess.run(
        ["redis-cli", "-h", server.host, "-p", str(server.port), "-n", str(db), "--raw", *command],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "REDISCLI_AUTH": server.password},
        timeout=30,
    )
    if check and done.returncode != 0:
        pytest.fail(f"redis-cli {' '.join(command)[:80]}: {done.stderr.strip()}")
    return done.stdout.strip()


def redis_contents(server: Server, databases: range) -> dict[int, dict[str, tuple[str, str]]]:
    """Per database: each key's type and value as redis-cli prints it (sorted where the type is unordered)."""
    reads = {
        "string": ("GET",),
        "hash": ("HGETALL",),
        "list": ("LRANGE", "{key}", "0", "-1"),
        "set": ("SMEMBERS",),
        "zset": ("ZRANGE", "{key}", "0", "-1", "WITHSCORES"),
    }
    out: dict[int, dict[str, tuple[str, str]]] = {}
    for db in databases:
        keys = sorted(k for k in redis_cli(server, db, "KEYS", "*").splitlines() if k)
        found: dict[str, tuple[str, str]] = {}
        for key in keys:
            kind = redis_cli(server, db, "TYPE", key)
            read = reads[kind]
            args = [a.replace("{key}", key) for a in read] if len(read) > 1 else [read[0], key]
            value = redis_cli(server, db, *args)
            found[key] = (kind, "\n".join(sorted(value.splitlines())) if kind in ("set", "hash") else value)
        out[db] = found
    return out
