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


def _flip(s3: Any, bucket: str, key: str, where: Any) -> None:
    body = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[where(len(body))] ^= 0x55
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))


def _largest_pack(s3: Any, bucket: str) -> str:
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    return max((o for o in listed if "/packs/" in o["Key"]), key=lambda o: o["Size"])["Key"]


def test_read_data_checks_each_packs_header_against_the_index(
    s3: Any, bucket: str, repo: Repository, written: Any
) -> None:
    from chalicelib.core.packs import TRAILER_SIZE, data_length, read_pack

    key = _largest_pack(s3, bucket)
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    start = data_length(read_pack(data))
    # A byte in the header (at 85 % of the pack for packs whose header is that large; in the header whatever).
    offset = max(int(len(data) * 0.85), start)
    assert start <= offset < len(data) - TRAILER_SIZE
    _flip(s3, bucket, key, lambda size: offset)

    report = check_repository(RepositoryReader(repo), read_data=True)

    pack = key.rsplit("/", 1)[-1]
    assert [(p.kind, p.where) for p in report.problems] == [("pack_corrupt", f"pack {pack}")]
    assert check_repository(RepositoryReader(repo), read_data=False).ok, "only --read-data reads pack headers"


def test_read_data_checks_each_packs_trailer(s3: Any, bucket: str, repo: Repository, written: Any) -> None:
    key = _largest_pack(s3, bucket)
    _flip(s3, bucket, key, lambda size: size - 5)  # the trailer's magic

    report = check_repository(RepositoryReader(repo), read_data=True)

    assert [p.kind for p in report.problems] == ["pack_corrupt"]
    assert "magic" in report.problems[0].detail
