"""One rule for which failures are transient, shared by every worker, and one description of a failure."""

from __future__ import annotations

import pytest

from chalicelib.aws.errors import AccessDenied as AwsAccessDenied
from chalicelib.aws.errors import AwsUnavailable, Throttled
from chalicelib.backup.errors import ClusterUnavailable as BackupClusterUnavailable
from chalicelib.catalog.errors import StaleState
from chalicelib.catalog.errors import Throttled as CatalogThrottled
from chalicelib.kube.errors import Forbidden, ServerError, TooManyRequests, Unreachable
from chalicelib.repository.errors import AccessDenied, BlobMissing, ObjectNotFound, StorageError
from chalicelib.restore.errors import ClusterUnavailable, MessagingUnavailable
from chalicelib.retry import describe, is_transient, retry_delay_s


@pytest.mark.parametrize(
    "exc",
    [
        TooManyRequests("429"),
        ServerError("503"),
        Unreachable("connection refused"),
        CatalogThrottled("ProvisionedThroughputExceededException"),
        StorageError("SlowDown"),
        AwsUnavailable("InternalFailure"),
        Throttled("ThrottlingException"),
        MessagingUnavailable("SQS is down"),
        ClusterUnavailable("discovery failed"),
    ],
)
def test_transient(exc: Exception) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        Forbidden("403"),
        ObjectNotFound("no such key"),
        AccessDenied("denied"),
        AwsAccessDenied("AccessDeniedException"),
        BlobMissing("missing", blob_id="ab" * 32),
        StaleState("c", "b", "Failed", "Running"),
        ValueError("bug"),
    ],
)
def test_final(exc: Exception) -> None:
    assert not is_transient(exc)


def _wrapped(cause: Exception) -> BackupClusterUnavailable:
    try:
        raise BackupClusterUnavailable("cluster 'prod': discovery failed") from cause
    except BackupClusterUnavailable as wrapped:
        return wrapped


def test_a_wrapped_transient_error_is_transient() -> None:
    assert is_transient(_wrapped(Unreachable("connection refused")))
    assert not is_transient(_wrapped(Forbidden("403")))


def test_describe_names_the_type_and_the_cause_once() -> None:
    try:
        try:
            raise TooManyRequests("slow down")
        except TooManyRequests as exc:
            raise BackupClusterUnavailable("discovery failed") from exc
    except BackupClusterUnavailable as wrapped:
        text = describe(wrapped)
    assert text == "ClusterUnavailable: discovery failed (caused by TooManyRequests: slow down)"
    assert describe(ValueError("x" * 5000)) == ("ValueError: " + "x" * 5000)[:2048]


def test_the_delay_grows_with_the_attempt() -> None:
    assert [retry_delay_s(n) for n in (1, 2, 3)] == [10, 20, 30]
