"""Cold start: fresh interpreters import ``app``, build their clients and handle one dispatcher tick.

Each run is a new ``python`` process against a moto server over HTTP (an empty table: nothing is due), so it pays
what a Lambda's first invocation pays after the runtime has started. Prints one JSON line: the medians of N runs
(``cold_invoke_ms`` = importing app + the first handled event; ``cpu_ms`` the process's CPU time, which a busy
machine disturbs less than wall time), and the deployment package's sizes.

    python bench/cold.py [--runs 7] [--no-package]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from bench.harness import ROOT

ZIPPED_LIMIT = 50 * 2**20  # Lambda's limit on a directly uploaded zip
UNZIPPED_LIMIT = 250 * 2**20  # Lambda's limit on the unzipped function and its layers

# Runs in the fresh interpreter; prints the phase timings as one JSON line.
_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import app
t1 = time.perf_counter()
from chalicelib import services as _services
spent = [0.0]
_client = _services.Services.client
def client(self, *args, **kwargs):
    start = time.perf_counter()
    try:
        return _client(self, *args, **kwargs)
    finally:
        spent[0] += time.perf_counter() - start
_services.Services.client = client
event = {"version": "0", "id": "cold", "detail-type": "Scheduled Event", "source": "aws.events",
         "account": "123456789012", "time": "2026-12-02T12:00:00Z", "region": "us-east-1",
         "resources": ["arn:aws:events:us-east-1:123456789012:rule/dispatcher"], "detail": {}}
class Context:
    def get_remaining_time_in_millis(self):
        return 60000
result = app.dispatcher(event, Context())
t2 = time.perf_counter()
clients = spent[0]
print(json.dumps({"import_app_ms": (t1 - t0) * 1000, "clients_ms": clients * 1000,
                  "handler_ms": (t2 - t1 - clients) * 1000, "cold_invoke_ms": (t2 - t0) * 1000,
                  "cpu_ms": time.process_time() * 1000, "result": result}))
"""


def cold_run(env: dict[str, str]) -> dict[str, Any]:
    """One fresh interpreter's timings (milliseconds)."""
    out = subprocess.run([sys.executable, "-c", _CHILD], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"cold run failed:\n{out.stderr}")
    line: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return line


def package_sizes(workdir: Path) -> dict[str, int]:
    """``chalice package`` in a copy of the project: the deployment zip's size, zipped and unzipped (bytes)."""
    src = workdir / "project"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", ".*_cache"))
    out = workdir / "out"
    chalice = Path(sys.executable).with_name("chalice")
    subprocess.run(
        [str(chalice), "package", "--stage", "dev", str(out)], cwd=src, check=True, capture_output=True, text=True
    )
    zipped = out / "deployment.zip"
    with zipfile.ZipFile(zipped) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    return {"zip_bytes": zipped.stat().st_size, "unzipped_bytes": unzipped}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-package", action="store_true", help="skip chalice package (timings only)")
    args = parser.parse_args(argv)
    from bench.harness import _moto
    from sandbox.environment import BUCKET, FAKE_CREDENTIALS, REGION, TABLE

    os.environ.update(FAKE_CREDENTIALS)
    with _moto("moto.server") as endpoint:
        env = {
            **os.environ,
            **FAKE_CREDENTIALS,
            "PYTHONPATH": str(ROOT),
            "LIFEBOAT_TABLE": TABLE,
            "LIFEBOAT_BUCKET": BUCKET,
            "LIFEBOAT_REGION": REGION,
            "LIFEBOAT_AWS_ENDPOINT_URL": endpoint,
        }
        cold_run(env)  # warms the OS page cache (a Lambda's code is local too); not counted
        runs = [cold_run(env) for _ in range(args.runs)]
    line: dict[str, Any] = {"bench": "cold", "runs": args.runs}
    for key in ("cold_invoke_ms", "import_app_ms", "handler_ms", "clients_ms", "cpu_ms"):
        line[key] = round(statistics.median(run[key] for run in runs), 1)
    if not args.no_package:
        with tempfile.TemporaryDirectory() as tmp:
            line.update(package_sizes(Path(tmp)))
        line.update(zip_limit_bytes=ZIPPED_LIMIT, unzipped_limit_bytes=UNZIPPED_LIMIT)
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
