"""Finish the deployment zip `chalice package` wrote: drop unused dependencies, add compiled bytecode.

Lambda unzips the code onto a read-only file system, so without ``.pyc`` files every cold start compiles every
module it imports. The bytecode is compiled with ``--invalidation-mode unchecked-hash``: the interpreter loads it
without comparing it to the source (zip timestamps would not match anyway), and the ``.py`` files stay for
tracebacks. It must be compiled by the Python version the functions run (``check_runtime``).
"""

from __future__ import annotations

import compileall
import fnmatch
import py_compile
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

# Entries of the zip (paths or patterns) that nothing on the Lambda path imports, with why (each one is checked by
# tests/integration/test_package.py, which imports every module app.py and chalicelib name from the package).
UNUSED: dict[str, str] = {
    "kubernetes/aio": "kubernetes' asyncio client (41 MB unzipped); chalicelib.kube uses the synchronous one",
    "aiohttp": "only kubernetes/aio and aiohttp_retry import it",
    "aiohttp_retry": "only kubernetes/aio imports it",
    "aiohappyeyeballs": "aiohttp's dependency",
    "aiosignal": "aiohttp's dependency",
    "frozenlist": "aiohttp's dependency",
    "multidict": "aiohttp's dependency",
    "propcache": "aiohttp's dependency",
    "yarl": "aiohttp's dependency",
    "attr": "aiohttp's dependency (attrs)",
    "attrs": "aiohttp's dependency",
    # zstandard loads its C extension (backend_c) unless PYTHON_ZSTANDARD_IMPORT_POLICY asks for the CFFI one.
    "zstandard/_cffi.*.so": "zstandard's CFFI backend (11 MB unzipped)",
}
# The AWS services the functions call (Services.client in chalicelib/services.py and the EKS/STS credentials in
# chalicelib/kube), plus the ones botocore's own credential providers call. botocore's other ~430 service models
# are 14 MB of the zip; tests/integration/test_package.py fails when the code asks for a service not listed here.
BOTOCORE_SERVICES = frozenset(
    {"dynamodb", "ec2", "eks", "events", "lambda", "s3", "secretsmanager", "sqs", "sts"} | {"sso", "sso-oidc", "signin"}
)
_DIST_INFO = {path for path in UNUSED if "/" not in path}  # whole distributions: drop their metadata too
TASK_ROOT = "/var/task"  # where Lambda unzips the code
_FILE_MODE = 0o100644 << 16  # a regular file, readable by the runtime's user


def runtime_tag() -> str:
    """The Lambda runtime this interpreter's bytecode is for (``python3.11``)."""
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def check_runtime(runtimes: Iterable[str]) -> None:
    """Bytecode only loads on the Python version that compiled it: refuse to package for another one."""
    other = sorted(set(runtimes) - {runtime_tag()})
    if other:
        raise ValueError(f"the functions run {', '.join(other)}, but this is {runtime_tag()}: package with that Python")


def _unused(name: str) -> bool:
    if any(name == path or name.startswith(f"{path}/") or fnmatch.fnmatch(name, path) for path in UNUSED):
        return True
    parts = name.split("/")
    if parts[:2] == ["botocore", "data"] and len(parts) > 3 and parts[2] not in BOTOCORE_SERVICES:
        return True
    top = parts[0]
    return top.endswith(".dist-info") and top.split("-", 1)[0].lower() in _DIST_INFO


def finish(zip_path: Path, *, workers: int = 1) -> dict[str, int]:
    """Rewrite ``zip_path`` in place without the unused entries and with a ``.pyc`` beside every module.

    Returns counts: entries dropped, modules compiled, modules that did not compile (they stay source only).
    """
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "code"
        with zipfile.ZipFile(zip_path) as archive:
            entries = [info for info in archive.infolist() if not _unused(info.filename)]
            dropped = len(archive.infolist()) - len(entries)
            for info in entries:
                archive.extract(info, root)
        sources = [root / info.filename for info in entries if info.filename.endswith(".py")]
        compileall.compile_dir(
            root,
            ddir=TASK_ROOT,  # tracebacks name the files where Lambda unzips them (and no temporary directory)
            quiet=2,
            workers=workers,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        compiled = sorted(p for p in root.rglob("*.pyc") if p.parent.name == "__pycache__")
        modes = {info.filename: info.external_attr for info in entries}
        rewritten = zip_path.with_suffix(".tmp")
        with zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
            for info in entries:
                _write(out, root, info.filename, modes[info.filename])
            for path in compiled:
                _write(out, root, path.relative_to(root).as_posix(), _FILE_MODE)
        shutil.move(rewritten, zip_path)
    return {"dropped": dropped, "compiled": len(compiled), "not_compiled": len(sources) - len(compiled)}


def _write(out: zipfile.ZipFile, root: Path, name: str, mode: int) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # fixed: the same code gives the same zip
    info.external_attr = mode
    info.compress_type = zipfile.ZIP_DEFLATED
    if name.endswith("/"):
        out.writestr(info, b"")
        return
    out.writestr(info, (root / name).read_bytes(), compresslevel=9)
