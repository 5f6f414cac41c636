"""Cold start: fresh interpreters import ``app``, build their clients and handle one dispatcher tick.

Each run is a new ``python -I`` process against a moto server over HTTP (an empty table: nothing is due), so it pays
what a Lambda's first invocation pays after the runtime has started. It runs from the unzipped deployment package
(``infra/deploy.py``'s ``chalice_package`` of a copy of the project: its bytecode and its bundled dependencies, as
Lambda runs it), or with ``--no-package`` from the source tree and the virtualenv's dependencies. Prints one JSON
line: the medians of N runs (``cold_invoke_ms`` = importing app + the first handled event; ``cpu_ms`` the process's
CPU time, which a busy machine disturbs less than wall time), what it ran from, and the package's sizes.

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ROOT  # noqa: E402

ZIPPED_LIMIT = 50 * 2**20  # Lambda's limit on a directly uploaded zip
UNZIPPED_LIMIT = 250 * 2**20  # Lambda's limit on the unzipped function and its layers

# Runs in the fresh interpreter; prints the phase timings as one JSON line.
_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])  # the code directory, first, as Lambda's runtime puts its task root
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
                  "cpu_ms": time.process_time() * 1000, "result": result,
                  "files": {m: sys.modules[m].__file__ for m in ("app", "chalicelib", "botocore")}}))
"""


def cold_run(env: dict[str, str], code: Path, *, bundled: bool = True) -> dict[str, Any]:
    """One fresh interpreter's timings (milliseconds), running ``app`` (and, ``bundled``, botocore) from ``code``.

    ``-I`` keeps PYTHONPATH and the user's site out (the code directory is the first path entry, as on Lambda);
    ``-B`` keeps the runs from writing bytecode next to the code (Lambda's task root is read-only).
    """
    out = subprocess.run(
        [sys.executable, "-I", "-B", "-c", _CHILD, str(code)],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"cold run failed:\n{out.stderr}")
    line: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    inside = ("app", "chalicelib", "botocore") if bundled else ("app", "chalicelib")
    outside = [f for m, f in line.pop("files").items() if m in inside and not Path(f).is_relative_to(code)]
    if outside:
        raise RuntimeError(f"the cold run imported these from outside {code}: {outside}")
    return line


def build_package(workdir: Path) -> Path:
    """The deployment zip of a copy of the project, as infra/deploy.py builds it (bytecode, unused parts dropped)."""
    from infra.deploy import chalice_package

    src = workdir / "project"
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", ".*_cache", "out", ".sandbox")
    shutil.copytree(ROOT, src, ignore=ignore)
    out = workdir / "out"
    chalice_package("dev", out, project=src)
    return out / "deployment.zip"


def package_sizes(zipped: Path) -> dict[str, int]:
    """The deployment zip's size, zipped and unzipped (bytes)."""
    with zipfile.ZipFile(zipped) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    return {"zip_bytes": zipped.stat().st_size, "unzipped_bytes": unzipped}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--no-package", action="store_true", help="run from the source tree (no chalice package, no sizes)"
    )
    args = parser.parse_args(argv)
    from bench.harness import _moto
    from sandbox.environment import BUCKET, FAKE_CREDENTIALS, REGION, TABLE

    os.environ.update(FAKE_CREDENTIALS)
    with tempfile.TemporaryDirectory() as tmp:
        line: dict[str, Any] = {
            "bench": "cold",
            "runs": args.runs,
            "ran_from": "source" if args.no_package else "package",
        }
        code = ROOT
        if not args.no_package:
            zipped = build_package(Path(tmp))
            line.update(package_sizes(zipped), zip_limit_bytes=ZIPPED_LIMIT, unzipped_limit_bytes=UNZIPPED_LIMIT)
            code = Path(tmp) / "code"
            with zipfile.ZipFile(zipped) as archive:
                archive.extractall(code)
        with _moto("moto.server") as endpoint:
            env = {
                **os.environ,
                **FAKE_CREDENTIALS,
                "LIFEBOAT_TABLE": TABLE,
                "LIFEBOAT_BUCKET": BUCKET,
                "LIFEBOAT_REGION": REGION,
                "LIFEBOAT_AWS_ENDPOINT_URL": endpoint,
            }
            bundled = not args.no_package
            cold_run(env, code, bundled=bundled)  # warms the OS page cache (a Lambda's code is local too); not counted
            runs = [cold_run(env, code, bundled=bundled) for _ in range(args.runs)]
    for key in ("cold_invoke_ms", "import_app_ms", "handler_ms", "clients_ms", "cpu_ms"):
        line[key] = round(statistics.median(run[key] for run in runs), 1)
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    main()
