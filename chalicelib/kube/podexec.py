"""The exec subresource's values: the channels of the streaming protocol, a command's result, and its errors.

kube-apiserver upgrades ``GET|POST /api/v1/namespaces/<ns>/pods/<pod>/exec?command=..&container=..&stdout=1&stderr=1``
to a WebSocket speaking ``v5.channel.k8s.io`` (or ``v4.channel.k8s.io``): each binary frame starts with its channel
byte (0 stdin, 1 stdout, 2 stderr, 3 the error channel, 4 resize; v5 adds 255, a client's close of one channel). The
error channel carries one ``metav1.Status`` when the command ends: ``Success``, or ``Failure`` with reason
``NonZeroExitCode`` and the exit code in ``details.causes[reason=ExitCode].message``, or another reason when the
command could not run at all (no such container, executable not found).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib.kube.errors import KubeError

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
SUBPROTOCOLS = (V5, V4)  # preference order, as kubectl and the kubernetes package offer them
MAX_OUTPUT = 64 * 1024  # a hook's output is for the error message and the log, not for storing


class ExecFailed(KubeError):
    """The command could not be run (the status channel said why), or the stream ended without saying."""


class ExecTimeout(KubeError):
    """The command did not end within its timeout; the stream was closed (the process may still run)."""


@dataclass(frozen=True)
class ExecResult:
    """How a command ended: its exit code and (the first MAX_OUTPUT bytes of) what it wrote."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def exit_code(status: Any, where: str) -> int:
    """The exit code a status-channel message reports; ExecFailed when the command did not run at all."""
    if isinstance(status, bytes | str):
        try:
            status = json.loads(status)
        except ValueError as exc:
            raise ExecFailed(f"{where}: the error channel held no Status JSON") from exc
    if not isinstance(status, dict):
        raise ExecFailed(f"{where}: the stream ended without the command's status")
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message"))
                except (TypeError, ValueError) as exc:
                    raise ExecFailed(f"{where}: exit code {cause.get('message')!r} is not a number") from exc
    message = str(status.get("message") or status.get("reason") or "unknown failure")[:500]
    raise ExecFailed(f"{where}: the command could not run: {message}", reason=status.get("reason"))
