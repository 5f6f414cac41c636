"""Backup hooks, the pure part: a policy's ``hooks`` block and Velero's pod annotations, parsed into Hook values.

A hook runs before a backup lists the cluster (``pre``) or after it ends (``post``, also when it failed): an HTTPS
webhook, a Lambda invoke, or a command executed in a pod's container through the ``exec`` subresource. Each has a
timeout and ``on_error``: ``fail`` stops a pre hook's backup (no manifest), ``continue`` records the failure in the
backup's errors and goes on. Pods in the backup's scope may carry Velero's annotations
(``pre.hook.backup.velero.io/command`` and its siblings, and the ``post.`` ones); they are read as Velero reads them,
so a team moving from Velero keeps its hooks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.errors import CoreError, InvalidPolicy
from chalicelib.core.selectors import parse_label_selector

PRE, POST = "pre", "post"
PHASES = (PRE, POST)
FAIL, CONTINUE = "fail", "continue"
WEBHOOK, LAMBDA, EXEC = "webhook", "lambda", "exec"
KINDS = (WEBHOOK, LAMBDA, EXEC)
DEFAULT_TIMEOUT_S = 30.0  # Velero's default for annotation hooks; ours for policy hooks too
MAX_TIMEOUT_S = 600.0  # a hook must leave the invocation time to back up after it
# A pre hook guards consistency, so its failure stops the backup; a post hook only cleans up after it.
DEFAULT_ON_ERROR = {PRE: FAIL, POST: CONTINUE}
POLICY, ANNOTATION = "policy", "annotation"

HOOK_FIELDS = frozenset({"pre", "post"})
KIND_FIELDS = {
    WEBHOOK: frozenset({"url", "timeout", "on_error"}),
    LAMBDA: frozenset({"function", "timeout", "on_error"}),
    EXEC: frozenset({"namespace", "pod", "selector", "container", "command", "timeout", "on_error"}),
}

# Velero's annotation keys (pkg/backup/item_hook_handler.go), one set per phase.
VELERO_PREFIX = {PRE: "pre.hook.backup.velero.io", POST: "post.hook.backup.velero.io"}
VELERO_ON_ERROR = {"Fail": FAIL, "Continue": CONTINUE}

# Go's time.ParseDuration grammar: a sequence of decimal numbers each with a unit ("1m30s", "1.5h"), or "0".
_GO_PART = re.compile(r"([0-9]*\.?[0-9]+|[0-9]+\.)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_LAMBDA_NAME = re.compile(r"(arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:)?[A-Za-z0-9_-]{1,140}(:[\w$-]+)?")


@dataclass(frozen=True)
class Hook:
    """One hook: what runs (webhook url, Lambda function, or exec target and command), its timeout and on_error."""

    kind: str
    on_error: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    url: str = ""
    function: str = ""
    namespace: str = ""
    pod: str = ""
    selector: str = ""  # a label selector choosing the pods (every matching pod runs the command)
    container: str = ""  # "" = the pod's first container, as Velero does
    command: tuple[str, ...] = ()
    source: str = POLICY  # or ANNOTATION: read from a pod's Velero annotations

    def describe(self) -> str:
        """The hook as errors and logs name it (never a secret: webhook URLs lose their query)."""
        if self.kind == WEBHOOK:
            return f"webhook {self.url.split('?', 1)[0]}"
        if self.kind == LAMBDA:
            return f"lambda {self.function}"
        target = self.pod or f"pods {self.selector}"
        where = f"{self.namespace}/{target}" + (f" container {self.container}" if self.container else "")
        origin = " (Velero annotation)" if self.source == ANNOTATION else ""
        return f"exec {json.dumps(list(self.command))} in {where}{origin}"

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"timeout": self.timeout_s, "on_error": self.on_error}
        if self.kind == WEBHOOK:
            body["url"] = self.url
        elif self.kind == LAMBDA:
            body["function"] = self.function
        else:
            body.update(namespace=self.namespace, command=list(self.command))
            for key in ("pod", "selector", "container"):
                if getattr(self, key):
                    body[key] = getattr(self, key)
        return {self.kind: body}


@dataclass(frozen=True)
class HookSettings:
    """A policy's ``hooks``: the pre hooks and the post hooks, each run in order."""

    pre: tuple[Hook, ...] = ()
    post: tuple[Hook, ...] = ()
    # Whether Velero's pod annotations are read (on by default: a team moving from Velero keeps its hooks).
    annotations: bool = True

    @property
    def enabled(self) -> bool:
        return bool(self.pre or self.post)

    def of(self, phase: str) -> tuple[Hook, ...]:
        return self.pre if phase == PRE else self.post

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"pre": [h.to_dict() for h in self.pre], "post": [h.to_dict() for h in self.post]}
        if not self.annotations:
            data["velero_annotations"] = False
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "hooks") -> HookSettings:
        settings, problems = parse_hooks(data, where)
        if settings is None:
            raise InvalidPolicy(problems)
        return settings


def parse_hooks(data: Any, where: str = "hooks") -> tuple[HookSettings | None, list[str]]:
    """Settings and no problems, or None and every problem found (each prefixed with ``where``)."""
    if data is None:
        return HookSettings(), []
    if not isinstance(data, Mapping):
        return None, [f"{where}: must be a mapping such as {{pre: [{{webhook: {{url: https://...}}}}], post: [...]}}"]
    problems: list[str] = []
    unknown = sorted(set(data) - HOOK_FIELDS - {"velero_annotations"})
    if unknown:
        problems.append(f"{where}: unknown fields {', '.join(unknown)} (known: post, pre, velero_annotations)")
    annotations = data.get("velero_annotations", True)
    if not isinstance(annotations, bool):
        problems.append(f"{where}.velero_annotations: must be true or false; got {annotations!r}")
    phases: dict[str, tuple[Hook, ...]] = {}
    for phase in PHASES:
        items = data.get(phase) or []
        if not isinstance(items, list):
            problems.append(f"{where}.{phase}: must be a list of hooks")
            continue
        hooks = [_parse_hook(item, phase, f"{where}.{phase}[{i}]", problems) for i, item in enumerate(items)]
        phases[phase] = tuple(h for h in hooks if h is not None)
    if problems:
        return None, problems
    return HookSettings(phases.get(PRE, ()), phases.get(POST, ()), bool(annotations)), []


def _parse_hook(item: Any, phase: str, where: str, problems: list[str]) -> Hook | None:
    if not isinstance(item, Mapping) or len(item) != 1 or next(iter(item)) not in KINDS:
        problems.append(f"{where}: must be exactly one of {{webhook: ...}}, {{lambda: ...}} or {{exec: ...}}")
        return None
    kind, body = next(iter(item.items()))
    if not isinstance(body, Mapping):
        problems.append(f"{where}.{kind}: must be a mapping")
        return None
    before = len(problems)
    unknown = sorted(set(body) - KIND_FIELDS[kind])
    if unknown:
        known = ", ".join(sorted(KIND_FIELDS[kind]))
        problems.append(f"{where}.{kind}: unknown fields {', '.join(unknown)} (known: {known})")
    on_error = body.get("on_error", DEFAULT_ON_ERROR[phase])
    if on_error not in (FAIL, CONTINUE):
        problems.append(f"{where}.{kind}.on_error: must be fail or continue; got {on_error!r}")
    timeout = _parse_timeout(body.get("timeout", DEFAULT_TIMEOUT_S), f"{where}.{kind}.timeout", problems)
    fields: dict[str, Any] = {}
    if kind == WEBHOOK:
        url = body.get("url")
        if not isinstance(url, str) or not re.fullmatch(r"https://[^\s/?#]+(/[^\s]*)?", url):
            problems.append(f"{where}.webhook.url: must be an https:// URL (plain http is refused); got {url!r}")
        fields["url"] = url
    elif kind == LAMBDA:
        function = body.get("function")
        if not isinstance(function, str) or not _LAMBDA_NAME.fullmatch(function):
            problems.append(f"{where}.lambda.function: must be a Lambda function name or ARN; got {function!r}")
        fields["function"] = function
    else:
        fields = _parse_exec(body, f"{where}.exec", problems)
    if len(problems) > before:
        return None
    return Hook(kind=kind, on_error=str(on_error), timeout_s=timeout, **fields)


def _parse_exec(body: Mapping[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    namespace = body.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        problems.append(f"{where}.namespace: is required (the namespace of the pod to run the command in)")
    pod, selector = body.get("pod", ""), body.get("selector", "")
    if not isinstance(pod, str) or not isinstance(selector, str) or bool(pod) == bool(selector):
        problems.append(f"{where}: give exactly one of pod (a name) or selector (a label selector)")
    elif selector:
        try:
            parse_label_selector(selector)
        except CoreError as exc:
            problems.append(f"{where}.selector: {exc}")
    container = body.get("container", "")
    if not isinstance(container, str):
        problems.append(f"{where}.container: must be a container name")
    command = body.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) and c for c in command):
        problems.append(f"{where}.command: must be a non-empty list of strings, e.g. [fsfreeze, --freeze, /data]")
        command = []
    return {
        "namespace": namespace,
        "pod": pod,
        "selector": selector,
        "container": container,
        "command": tuple(command),
    }


def _parse_timeout(value: Any, where: str, problems: list[str]) -> float:
    seconds: float | None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = parse_go_duration(value)
    else:
        seconds = None
    if seconds is None or not 0 < seconds <= MAX_TIMEOUT_S:
        problems.append(
            f"{where}: must be seconds or a duration like 30s or 1m, above 0 and at most {int(MAX_TIMEOUT_S)}s; "
            f"got {value!r}"
        )
        return DEFAULT_TIMEOUT_S
    return seconds


def parse_go_duration(text: str) -> float | None:
    """Seconds of a Go duration ("30s", "1m30s", "1.5h", "0"), or None when Go's time.ParseDuration refuses it."""
    text = text.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    if not body:
        return None
    total, position = 0.0, 0
    for match in _GO_PART.finditer(body):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    return sign * total if position == len(body) else None


# -- Velero's pod annotations -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnotationHook:
    """A hook a pod's Velero annotations ask for, and what was wrong with them (the defaults then apply)."""

    hook: Hook
    warnings: tuple[str, ...] = field(default_factory=tuple)


def velero_hook(pod: Mapping[str, Any], phase: str) -> AnnotationHook | None:
    """The ``phase`` hook a pod's Velero annotations ask for, or None when it has no ``<phase>.../command``.

    As Velero: the command is a JSON array or one string (the whole string is the program, no shell); the container
    defaults to the pod's first; ``on-error`` is Fail or Continue (default Fail, for post hooks too); ``timeout`` is a
    Go duration (default 30s). A value Velero would ignore is ignored here too, with a warning saying so.
    """
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    prefix = VELERO_PREFIX[phase]
    raw_command = annotations.get(f"{prefix}/command")
    if not isinstance(raw_command, str) or not raw_command.strip():
        return None
    name = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    warnings: list[str] = []
    command = _velero_command(raw_command)
    containers = [str(c.get("name", "")) for c in ((pod.get("spec") or {}).get("containers") or [])]
    container = str(annotations.get(f"{prefix}/container") or "") or (containers[0] if containers else "")
    if containers and container not in containers:
        warnings.append(f"pod {name}: {prefix}/container names {container!r}, which the pod does not have")
    raw_on_error = annotations.get(f"{prefix}/on-error")
    on_error = VELERO_ON_ERROR.get(str(raw_on_error), FAIL)
    if raw_on_error is not None and raw_on_error not in VELERO_ON_ERROR:
        warnings.append(f"pod {name}: {prefix}/on-error {raw_on_error!r} is not Fail or Continue; using Fail")
    timeout = DEFAULT_TIMEOUT_S
    raw_timeout = annotations.get(f"{prefix}/timeout")
    if raw_timeout is not None:
        parsed = parse_go_duration(str(raw_timeout))
        if parsed is None or parsed <= 0:
            warnings.append(
                f"pod {name}: {prefix}/timeout {raw_timeout!r} is not a Go duration such as 30s or 1m; using 30s"
            )
        else:
            timeout = min(parsed, MAX_TIMEOUT_S)
    hook = Hook(
        kind=EXEC,
        on_error=on_error,
        timeout_s=timeout,
        namespace=str(meta.get("namespace") or ""),
        pod=str(meta.get("name") or ""),
        container=container,
        command=command,
        source=ANNOTATION,
    )
    return AnnotationHook(hook, tuple(warnings))


def _velero_command(raw: str) -> tuple[str, ...]:
    """Velero's parseStringToCommand: a JSON array of strings, else the whole string as a single element."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return (raw,)
    if isinstance(parsed, list) and parsed and all(isinstance(p, str) for p in parsed):
        return tuple(parsed)
    return (raw,)
