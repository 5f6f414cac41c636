"""S3ObjectStore lists every page of ListObjectsV2, following continuation tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.repository.store import S3ObjectStore


class PagedS3:
    """ListObjectsV2 answering two keys a page, as S3 does with continuation tokens."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.calls: list[dict[str, Any]] = []

    def list_objects_v2(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        start = int(params.get("ContinuationToken", 0))
        chunk = [k for k in self.keys if k.startswith(params["Prefix"])][start : start + 2]
        more = start + 2 < len([k for k in self.keys if k.startswith(params["Prefix"])])
        page: dict[str, Any] = {
            "Contents": [{"Key": k, "Size": 1, "LastModified": datetime(2026, 1, 1, tzinfo=UTC)} for k in chunk],
            "IsTruncated": more,
        }
        if more:
            page["NextContinuationToken"] = str(start + 2)
        return page


def test_list_follows_every_page():
    keys = [f"lifeboat/v1/index/{i:02d}" for i in range(5)] + ["lifeboat/v1/packs/aa/x"]
    s3 = PagedS3(keys)
    store = S3ObjectStore(s3, "bucket")
    assert list(store.list("index/")) == [f"index/{i:02d}" for i in range(5)]
    assert len(s3.calls) == 3 and s3.calls[0] == {"Bucket": "bucket", "Prefix": "lifeboat/v1/index/"}
    assert [info.key for info in store.list_info("")] == [k[len("lifeboat/v1/"):] for k in keys]


def test_an_empty_listing_is_one_request():
    s3 = PagedS3([])
    assert list(S3ObjectStore(s3, "bucket").list("index/")) == []
    assert len(s3.calls) == 1
