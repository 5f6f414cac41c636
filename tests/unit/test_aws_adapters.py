"""The AWS adapters translate botocore errors into one family, chained to the original."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from chalicelib.aws.errors import AccessDenied, AwsError, AwsUnavailable, NotFound, Throttled
from chalicelib.aws.events import EventBus
from chalicelib.aws.secrets import SecretReader
from chalicelib.aws.sqs import SqsQueue

URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/q"


def client(service: str) -> Any:
    return boto3.client(service, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("ThrottlingException", 400, Throttled),
        ("RequestThrottled", 403, Throttled),
        ("ResourceNotFoundException", 400, NotFound),
        ("AccessDeniedException", 400, AccessDenied),
        ("InternalFailure", 500, AwsUnavailable),
        ("InvalidParameterValue", 400, AwsError),
    ],
)
def test_client_errors_become_the_family(code: str, status: int, error: type[AwsError]) -> None:
    secrets = client("secretsmanager")
    with Stubber(secrets) as stub:
        stub.add_client_error("get_secret_value", service_error_code=code, http_status_code=status)
        with pytest.raises(error, match=f"secret 'x': {code}") as err:
            SecretReader(secrets).read("x")
    assert type(err.value) is error and err.value.code == code
    assert isinstance(err.value.__cause__, ClientError)


def test_a_network_error_is_unavailable() -> None:
    class Down:
        def send_message(self, **kwargs: Any) -> Any:
            raise EndpointConnectionError(endpoint_url=URL)

    with pytest.raises(AwsUnavailable, match="SQS send_message") as err:
        SqsQueue(Down(), URL).send("{}")
    assert isinstance(err.value.__cause__, EndpointConnectionError)


def test_messages_are_sent_ten_per_batch_with_a_clamped_delay() -> None:
    sent: list[Any] = []

    class Recorder:
        def send_message(self, **kwargs: Any) -> dict[str, Any]:
            sent.append(kwargs)
            return {"MessageId": "m-1"}

        def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
            sent.append(kwargs)
            return {"Successful": [{"Id": e["Id"]} for e in kwargs["Entries"]]}

    queue = SqsQueue(Recorder(), URL)
    assert queue.send("{}", delay_s=5000) == "m-1"
    assert sent[0]["DelaySeconds"] == 900
    assert queue.send_many(str(i) for i in range(23)) == 23
    assert [len(call["Entries"]) for call in sent[1:]] == [10, 10, 3]


def test_a_refused_batch_entry_is_sent_once_more_then_unavailable() -> None:
    class Refusing:
        calls = 0

        def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
            Refusing.calls += 1
            return {"Failed": [{"Id": kwargs["Entries"][0]["Id"], "Code": "InternalError"}]}

    with pytest.raises(AwsUnavailable, match="SQS refused 1 messages"):
        SqsQueue(Refusing(), URL).send_many(["a", "b"])
    assert Refusing.calls == 2


def test_a_refused_event_names_its_error_code() -> None:
    class Refusing:
        def put_events(self, **kwargs: Any) -> dict[str, Any]:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException"}]}

    with pytest.raises(AwsUnavailable, match="EventBridge refused 'Restore Completed': ThrottlingException"):
        EventBus(Refusing()).put("lifeboat", "Restore Completed", {})


def test_secret_stages_and_rotation_through_the_store() -> None:
    from moto import mock_aws

    from chalicelib.aws.secrets import SecretStore

    with mock_aws():
        store = SecretStore(boto3.client("secretsmanager", region_name="us-east-1"))
        store.create("lifeboat/api-clients/ci", "one", description="test key")
        assert store.read_stage("lifeboat/api-clients/ci", "AWSCURRENT") == "one"
        assert store.read_stage("lifeboat/api-clients/ci", "AWSPREVIOUS") is None  # never rotated
        store.put("lifeboat/api-clients/ci", "two")
        assert store.read_stage("lifeboat/api-clients/ci", "AWSCURRENT") == "two"
        assert store.read_stage("lifeboat/api-clients/ci", "AWSPREVIOUS") == "one"
        store.delete("lifeboat/api-clients/ci")
        with pytest.raises(AwsError, match="lifeboat/api-clients/ci"):
            store.read_stage("lifeboat/api-clients/ci", "AWSCURRENT")
        with pytest.raises(NotFound, match="create_secret|get_secret_value|missing"):
            SecretReader(boto3.client("secretsmanager", region_name="us-east-1")).read("missing")
