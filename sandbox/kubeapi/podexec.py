"""The pods/exec subresource as kube-apiserver serves it: a WebSocket upgrade speaking v5/v4.channel.k8s.io.

Nothing runs for real: tests register what a command prints and its exit code (``ExecHandlers.register``), e.g. a
fake ``fsfreeze``; a command no handler knows fails as a missing executable does in a real container. The frames are
the real protocol's: each binary message starts with its channel byte (1 stdout, 2 stderr, 3 the Status JSON that
ends the command), then the server closes the WebSocket.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sandbox.kubeapi import routing
from sandbox.kubeapi.errors import ApiError, bad_request

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's key suffix
STDOUT, STDERR, ERROR = 1, 2, 3


@dataclass(frozen=True)
class ExecCall:
    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    subprotocol: str


@dataclass(frozen=True)
class ExecOutcome:
    """What a registered command does: print, exit, and take ``delay`` seconds first."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    delay: float = 0.0


Handler = Callable[[ExecCall], ExecOutcome]


class ExecHandlers:
    """The commands this test server can "run", matched by program name (the command's first element)."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self.calls: list[ExecCall] = []
        self.subprotocols: tuple[str, ...] = (V5, V4)  # what the server accepts; (V4,) plays an older cluster
        self._defaults()

    def _defaults(self) -> None:
        # What every image of the sample app has: its Velero pre hook flushes with /bin/sync.
        self._handlers["/bin/sync"] = lambda _call: ExecOutcome()

    def register(self, program: str, outcome: ExecOutcome | Handler) -> None:
        handler: Handler = outcome if callable(outcome) else (lambda _call, o=outcome: o)  # type: ignore[misc]
        with self._lock:
            self._handlers[program] = handler

    def clear(self) -> None:
        """Forget registered commands (the defaults stay) and the calls seen."""
        with self._lock:
            self._handlers.clear()
            self.calls.clear()
            self._defaults()

    def run(self, call: ExecCall) -> ExecOutcome | None:
        with self._lock:
            self.calls.append(call)
            handler = self._handlers.get(call.command[0])
        return handler(call) if handler is not None else None


def prepare(
    api: Any, handlers: ExecHandlers, path: str, query: Sequence[tuple[str, str]], headers: Mapping[str, str]
) -> ExecCall:
    """The call an upgrade request asks for, or the ApiError kube-apiserver answers before upgrading."""
    route = routing.parse(path)
    if route.kind != "resource" or route.plural != "pods" or route.subresource != "exec" or not route.namespace:
        raise ApiError(404, "the server could not find the requested resource", "NotFound")
    rtype = api.registry.lookup("", "v1", "pods")
    _, body = api.get(rtype, "v1", route.namespace, route.name or "")
    pod = orjson.loads(body)
    command = tuple(v for k, v in query if k == "command")
    if not command:
        raise bad_request("you must specify at least 1 command")
    names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    container = next((v for k, v in query if k == "container"), "")
    if not container:
        if len(names) != 1:
            raise bad_request(f"a container name must be specified for pod {route.name}, choose one of: {names}")
        container = names[0]
    elif container not in names:
        raise bad_request(f"container {container} is not valid for pod {route.name}")
    offered = [p.strip() for p in (headers.get("Sec-WebSocket-Protocol") or "").split(",") if p.strip()]
    chosen = next((p for p in offered if p in handlers.subprotocols), "")
    if not chosen:
        raise bad_request(
            f"unable to upgrade: no common subprotocol in {offered} (server speaks {handlers.subprotocols})"
        )
    return ExecCall(route.namespace, route.name or "", container, command, chosen)


def handshake(headers: Mapping[str, str], subprotocol: str) -> bytes:
    """The 101 answer accepting the upgrade (RFC 6455 section 4.2.2)."""
    key = (headers.get("Sec-WebSocket-Key") or "").strip()
    accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()  # noqa: S324 -- RFC 6455
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept}",
        f"Sec-WebSocket-Protocol: {subprotocol}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def stream(handlers: ExecHandlers, call: ExecCall) -> bytes:
    """Every frame the server sends for ``call``: its output per channel, the Status, then the close."""
    outcome = handlers.run(call)
    if outcome is not None and outcome.delay:
        time.sleep(outcome.delay)
    frames = []
    if outcome is None:
        status = _status_failure(
            "InternalError",
            f'Internal error occurred: error executing command in container: exec: "{call.command[0]}": '
            "executable file not found in $PATH",
        )
    else:
        if outcome.stdout:
            frames.append(frame(bytes([STDOUT]) + outcome.stdout))
        if outcome.stderr:
            frames.append(frame(bytes([STDERR]) + outcome.stderr))
        status = _status_for(call, outcome.exit_code)
    frames.append(frame(bytes([ERROR]) + orjson.dumps(status)))
    frames.append(frame(struct.pack("!H", 1000), opcode=0x8))
    return b"".join(frames)


def frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One unmasked, final server frame."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


def _status_for(call: ExecCall, code: int) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    message = (
        f"command terminated with non-zero exit code: error executing command {list(call.command)}, exit code {code}"
    )
    status = _status_failure("NonZeroExitCode", message)
    status["details"] = {"causes": [{"reason": "ExitCode", "message": str(code)}]}
    return status


def _status_failure(reason: str, message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason}
