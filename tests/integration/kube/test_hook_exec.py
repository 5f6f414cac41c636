"""KubeClient.exec over the exec subresource's WebSocket protocol, against the test server (fakeonly: it fakes the
commands; against a real cluster the pods would need real images)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.kube.errors import Invalid, NotFound
from chalicelib.kube.podexec import ExecFailed, ExecTimeout, exit_code
from sandbox.kubeapi.podexec import V4, V5, ExecOutcome
from tests.support.resources import POD, SA

pytestmark = pytest.mark.fakeonly


@pytest.fixture
def pod(fake_kube: Any, kube_client: Any, test_namespace: str) -> str:
    kube_client.create(SA, {"metadata": {"name": "default"}}, test_namespace)
    spec = {"containers": [{"name": "db", "image": "postgres:16"}, {"name": "freezer", "image": "busybox"}]}
    kube_client.create(POD, {"metadata": {"name": "db-0"}, "spec": spec}, test_namespace)
    fake_kube.exec_handlers.clear()
    fake_kube.exec_handlers.subprotocols = (V5, V4)
    yield "db-0"
    fake_kube.exec_handlers.clear()
    fake_kube.exec_handlers.subprotocols = (V5, V4)


def test_exec_returns_output_and_exit_code(fake_kube: Any, kube_client: Any, test_namespace: str, pod: str) -> None:
    fake_kube.exec_handlers.register("fsfreeze", ExecOutcome(stdout=b"frozen /data\n", stderr=b"note\n"))
    result = kube_client.exec(test_namespace, pod, "freezer", ["fsfreeze", "--freeze", "/data"], 5)
    assert (result.exit_code, result.stdout, result.stderr) == (0, b"frozen /data\n", b"note\n")
    call = fake_kube.exec_handlers.calls[-1]
    assert (call.container, call.command, call.subprotocol) == ("freezer", ("fsfreeze", "--freeze", "/data"), V5)
    # The request went to the exec subresource with the query kube-apiserver reads.
    record = [r for r in fake_kube.requests if r.path.endswith(f"/pods/{pod}/exec")][-1]
    assert record.status == 101 and record.query["stdout"] == "1" and record.query["container"] == "freezer"


def test_non_zero_exit_code_comes_from_the_status_channel(
    fake_kube: Any, kube_client: Any, test_namespace: str, pod: str
) -> None:
    fake_kube.exec_handlers.register("redis-cli", ExecOutcome(stderr=b"ERR busy\n", exit_code=3))
    result = kube_client.exec(test_namespace, pod, "db", ["redis-cli", "BGSAVE"], 5)
    assert (result.exit_code, result.ok, result.stderr) == (3, False, b"ERR busy\n")


def test_v4_only_server(fake_kube: Any, kube_client: Any, test_namespace: str, pod: str) -> None:
    fake_kube.exec_handlers.subprotocols = (V4,)
    fake_kube.exec_handlers.register("sync", ExecOutcome())
    assert kube_client.exec(test_namespace, pod, "db", ["sync"], 5).exit_code == 0
    assert fake_kube.exec_handlers.calls[-1].subprotocol == V4


def test_unknown_program_fails_as_in_a_container(kube_client: Any, test_namespace: str, pod: str) -> None:
    with pytest.raises(ExecFailed, match="executable file not found"):
        kube_client.exec(test_namespace, pod, "db", ["nope"], 5)


def test_timeout(fake_kube: Any, kube_client: Any, test_namespace: str, pod: str) -> None:
    fake_kube.exec_handlers.register("sleep", ExecOutcome(delay=2.0))
    with pytest.raises(ExecTimeout, match=r"\['sleep', '10'\] did not end within 0.5s"):
        kube_client.exec(test_namespace, pod, "db", ["sleep", "10"], 0.5)


def test_missing_pod_and_bad_container(kube_client: Any, test_namespace: str, pod: str) -> None:
    with pytest.raises(NotFound):
        kube_client.exec(test_namespace, "gone", "db", ["true"], 5)
    with pytest.raises(Invalid, match="container web is not valid for pod db-0"):
        kube_client.exec(test_namespace, pod, "web", ["true"], 5)


def test_status_parsing() -> None:
    assert exit_code(b'{"metadata":{},"status":"Success"}', "x") == 0
    with pytest.raises(ExecFailed, match="without the command's status"):
        exit_code(None, "x")
