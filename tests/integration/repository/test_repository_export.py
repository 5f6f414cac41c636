"""export_backup: kubectl-ready YAML, links out of the target refused, safe file names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.core.canonical import canonical_blob
from chalicelib.repository import Repository, RepositoryReader, export_backup
from chalicelib.repository.errors import ExportError
from chalicelib.repository.export import safe_name
from tests.support.repository import small_cluster


def test_export_writes_kubectl_ready_yaml(tmp_path: Path, repo: Repository, written: Any) -> None:
    manifest, stored = written
    out = tmp_path / "export"

    report = export_backup(RepositoryReader(repo), manifest, out)

    assert report.objects == len(small_cluster()) == len(report.files)
    assert "shop/configmap/settings-0.yaml" in report.files
    assert "billing/deployment/web.yaml" in report.files
    assert "_cluster/namespace/shop.yaml" in report.files
    assert "_cluster/clusterrole/system_controller_widgets.yaml" in report.files
    by_content = {canonical_blob(obj)[1]: obj for obj in stored.values()}
    for rel in report.files:
        text = (out / rel).read_text()
        doc = yaml.safe_load(text)
        assert list(doc)[:3] == ["apiVersion", "kind", "metadata"]
        assert canonical_blob(doc)[1] in by_content
        assert (out / rel).stat().st_mode & 0o077 == 0
    secret = yaml.safe_load((out / "shop/secret/db-creds.yaml").read_text())
    assert secret["data"] == {"password": "c2VjcmV0LXBhc3N3b3Jk"} and "status" not in secret

    with pytest.raises(ExportError, match="overwrite"):
        export_backup(RepositoryReader(repo), manifest, out)


def test_export_refuses_to_follow_a_link_out_of_the_target(tmp_path: Path, repo: Repository, written: Any) -> None:
    manifest, _ = written
    out, elsewhere = tmp_path / "export", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "shop").symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(ExportError, match="outside"):
        export_backup(RepositoryReader(repo), manifest, out)

    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "expected"), [("..", "_.."), (".", "_."), ("a/b", "a_b"), ("sys:ctl", "sys_ctl"), ("ok-1.x", "ok-1.x")]
)
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name) == expected
