"""check_repository on S3 (moto): a healthy repository, and blobs no index knows."""

from __future__ import annotations

from typing import Any

from chalicelib.core.ids import BlobId
from chalicelib.core.packs import BLOB_TREE
from chalicelib.core.trees import encode_root
from chalicelib.repository import Repository, RepositoryReader, RepositoryWriter, check_repository
from tests.support.repository import bare_manifest


def test_check_on_a_healthy_repository_reports_nothing_and_progress(repo: Repository, written: Any) -> None:
    calls: list[tuple[int, int]] = []
    reader = RepositoryReader(repo)

    report = check_repository(reader, read_data=True, progress=lambda done, total: calls.append((done, total)))

    n_blobs = len(reader.load_index())
    assert report.ok and report.problems == []
    assert report.manifests_checked == 1
    assert report.blobs_checked == n_blobs
    assert calls[-1] == (n_blobs, n_blobs) and len(calls) == n_blobs
    assert check_repository(RepositoryReader(repo), read_data=False).ok


def test_check_reports_a_blob_no_index_knows(s3: Any, bucket: str, repo: Repository) -> None:
    writer = RepositoryWriter(repo)
    missing_tree = "d" * 64
    root, data = encode_root({"shop": BlobId(missing_tree)})
    writer.add(root, data, BLOB_TREE)
    writer.write_manifest(bare_manifest("b1", root, writer.finish()))

    report = check_repository(RepositoryReader(repo))

    assert [(p.kind, p.blob_id) for p in report.problems] == [("blob_missing", missing_tree)]
    assert "scope shop" in report.problems[0].where
