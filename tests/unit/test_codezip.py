"""infra/codezip.py: the deployment zip loses the unused parts and gains unchecked-hash bytecode."""

from __future__ import annotations

import ast
import importlib.util
import marshal
import sys
import zipfile
from pathlib import Path

import pytest

from infra import codezip

ROOT = Path(__file__).resolve().parents[2]
TAG = sys.implementation.cache_tag


def _zip(path: Path, files: dict[str, str], mode: int = 0o100755 << 16) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode
            archive.writestr(info, text)


def test_finish_drops_the_unused_parts_and_compiles_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "deployment.zip"
    _zip(
        path,
        {
            "app.py": "X = 1\n",
            "chalicelib/__init__.py": "",
            "kubernetes/client/api.py": "Y = 2\n",
            "kubernetes/aio/client.py": "Z = 3\n",
            "aiohttp/__init__.py": "",
            "aiohttp-3.14.5.dist-info/METADATA": "Name: aiohttp\n",
            "zstandard/_cffi.cpython-311-x86_64-linux-gnu.so": "elf",
            "zstandard/backend_c.cpython-311-x86_64-linux-gnu.so": "elf",
            "botocore/data/endpoints.json": "{}",
            "botocore/data/sqs/2012-11-05/service-2.json.gz": "gz",
            "botocore/data/redshift/2012-12-01/service-2.json.gz": "gz",
            "broken.py": "def (:\n",
        },
    )
    counts = codezip.finish(path)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        pyc = archive.read(f"__pycache__/app.{TAG}.pyc")
        modes = {info.filename: info.external_attr for info in archive.infolist()}
    assert names == {
        "app.py",
        f"__pycache__/app.{TAG}.pyc",
        "chalicelib/__init__.py",
        f"chalicelib/__pycache__/__init__.{TAG}.pyc",
        "kubernetes/client/api.py",
        f"kubernetes/client/__pycache__/api.{TAG}.pyc",
        "zstandard/backend_c.cpython-311-x86_64-linux-gnu.so",
        "botocore/data/endpoints.json",
        "botocore/data/sqs/2012-11-05/service-2.json.gz",
        "broken.py",  # does not compile: stays source only, as Python would treat it
    }
    assert counts == {"dropped": 5, "compiled": 3, "not_compiled": 1}
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, not checked against the source
    assert modes["app.py"] == 0o100755 << 16  # chalice's modes are kept
    assert modes[f"__pycache__/app.{TAG}.pyc"] == 0o100644 << 16
    code = marshal.loads(pyc[16:])
    assert code.co_filename == "/var/task/app.py"  # where Lambda unzips it: tracebacks find the source


def test_finish_gives_the_same_zip_for_the_same_code(tmp_path: Path) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    for path in (first, second):
        _zip(path, {"app.py": "X = 1\n", "chalicelib/a.py": "Y = 2\n"})
        codezip.finish(path)
    assert first.read_bytes() == second.read_bytes()  # the deploy names the S3 object by the zip's digest


def test_check_runtime_refuses_bytecode_for_another_python() -> None:
    codezip.check_runtime([codezip.runtime_tag(), codezip.runtime_tag()])
    with pytest.raises(ValueError, match="python3.99"):
        codezip.check_runtime([codezip.runtime_tag(), "python3.99"])


def _client_services() -> dict[str, str]:
    """Every ``.client("service", ...)`` / ``create_client("service", ...)`` on the Lambda path (not the CLI)."""
    found: dict[str, str] = {}
    files = [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]
    for path in files:
        if "cli" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in ("client", "create_client") or not node.args:
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}:{node.col_offset}"
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found[where] = first.value
            # A service chosen at run time must be named here so its model ships. Not boto calls: Services.client's
            # own create_client(service, ...) and the sharded backup's contexts.client(context, cluster).
            elif path.name != "services.py" and "sharded" not in path.parts:
                found[where] = ast.unparse(first)
    return found


def test_the_package_keeps_the_model_of_every_service_the_functions_call() -> None:
    calls = _client_services()
    assert {"dynamodb", "sqs", "s3", "eks", "sts", "secretsmanager"} <= set(calls.values())  # the scan finds them
    missing = {where: service for where, service in calls.items() if service not in codezip.BOTOCORE_SERVICES}
    assert missing == {}
