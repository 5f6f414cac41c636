"""Backup hooks, run: the policy's and the pods' (Velero annotations) pre hooks before listing, post hooks after.

A pre hook that fails with ``on_error: fail`` fails the backup before anything is listed (no manifest), naming the
hook; with ``continue`` its failure is one of the backup's errors (PartiallyFailed). Post hooks always run, after
the commit or the failure, and their failures are logged, returned and kept on the backup record
(``extra.post_hooks``): the manifest is already written and is never rewritten. A sharded backup's post hooks are
planned with its pre hooks, stored in its shard plan and run by the join that wins, after the commit or the failure
(or by the shard whose failure fails the backup). Webhooks are HTTPS POSTs of ``{backup_id, cluster, policy, phase}``
(and ``state`` for post hooks) signed with the API's request signature under the policy's hook secret
(``lifeboat/hooks/<policy>`` in Secrets Manager); Lambda hooks are synchronous invokes of the same payload; exec
hooks run through the pods/exec subresource.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from chalicelib.aws.events import Publisher, announce
from chalicelib.backup.errors import BackupError
from chalicelib.core.events import hook_failed
from chalicelib.core.hooks import EXEC, FAIL, LAMBDA, POST, PRE, WEBHOOK, Hook, HookSettings, velero_hook
from chalicelib.observability import logger

SECRET_PREFIX = "lifeboat/hooks/"  # + the policy's name: the key webhooks are signed with
DEFAULT_KEY = "default"  # the secret (and key id) of a job without a policy
PODS_PATH = "/api/v1/pods"
NAMESPACE_LISTS_MAX = 4  # up to this many namespaces in scope, their pods are listed namespace by namespace
MAX_DETAIL = 300  # characters of a hook's output or answer kept in its error

# (key id, secret, path, query, body, unix time) -> the signature headers (``api.signature``, wired in services).
Signer = Callable[[str, str, str, Sequence[tuple[str, str]], bytes, int], Mapping[str, str]]


class HookFailed(BackupError):
    """A pre hook with ``on_error: fail`` failed: the backup stops before listing, and no manifest is written."""


@dataclass(frozen=True)
class HookContext:
    """What a hook is told about the backup it runs for."""

    backup_id: str
    cluster: str
    policy: str | None

    def payload(self, phase: str, state: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "backup_id": self.backup_id,
            "cluster": self.cluster,
            "policy": self.policy,
            "phase": phase,
        }
        if state is not None:
            body["state"] = state
        return body


@dataclass(frozen=True)
class HookPlan:
    """The hooks of one backup: the policy's, then those the pods in scope ask for with Velero's annotations."""

    pre: tuple[Hook, ...] = ()
    post: tuple[Hook, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not (self.pre or self.post)


class WebhookSender:
    """POSTs signed JSON over HTTPS, verifying the server's certificate (the system CAs, or ``ca_file``)."""

    def __init__(
        self,
        secret_for: Callable[[str], str],
        sign: Signer,
        *,
        ca_file: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret_for = secret_for
        self._sign = sign
        self._tls = ssl.create_default_context(cafile=ca_file)
        self._clock = clock

    def send(self, url: str, payload: Mapping[str, Any], key_id: str, timeout: float) -> int:
        """The answer's status when it is 2xx; BackupError naming the status (or the connection failure) otherwise."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise BackupError(f"webhook {url.split('?', 1)[0]}: only https:// URLs are called")
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        path = parts.path or "/"
        query = parse_qsl(parts.query, keep_blank_values=True)
        secret_id = SECRET_PREFIX + key_id
        try:
            secret = self._secret_for(secret_id)
        except Exception as exc:
            raise BackupError(f"cannot read the webhook signing secret {secret_id!r}: {exc}") from exc
        headers = {"Content-Type": "application/json", "User-Agent": "lifeboat-hooks"}
        headers.update(self._sign(key_id, secret, path, query, body, int(self._clock())))
        target = path + (f"?{parts.query}" if parts.query else "")
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=self._tls)
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read(MAX_DETAIL)
        except TimeoutError as exc:
            raise BackupError(f"no answer within {timeout:g}s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise BackupError(f"request failed: {type(exc).__name__}: {exc}") from exc
        finally:
            connection.close()
        if not 200 <= response.status < 300:
            raise BackupError(f"answered {response.status}: {answer.decode(errors='replace')[:MAX_DETAIL]}")
        return response.status


class HookRunner:
    """Plans and runs a backup's hooks; each hook kind needs its backend (a webhook sender, a function invoker)."""

    def __init__(
        self,
        *,
        webhooks: WebhookSender | None = None,
        functions: Callable[[], Any] | None = None,
        events: Publisher | None = None,
    ) -> None:
        """``functions`` builds an ``aws.functions.FunctionInvoker`` when a Lambda hook first needs one (its client is
        not built for backups without one); ``events`` announces every hook failure ("Hook Failed")."""
        self._webhooks = webhooks
        self._functions = functions
        self._events = events

    def plan(
        self, settings: HookSettings, client: Any, namespaces: Iterable[str], label_selector: str = ""
    ) -> HookPlan:
        """The policy's hooks, and the hooks the pods of ``namespaces`` ask for with Velero's annotations."""
        pre: list[Hook] = []
        post: list[Hook] = []
        warnings: list[str] = []
        selected = set(namespaces)
        if settings.annotations and selected:
            try:
                # A few namespaces: each one's own pod list (one request each for most); more: one cluster-wide
                # list, whose pages (500 pods each) cost less than a list per namespace.
                paths = (
                    [f"/api/v1/namespaces/{ns}/pods" for ns in sorted(selected)]
                    if len(selected) <= NAMESPACE_LISTS_MAX
                    else [PODS_PATH]
                )
                pods = [
                    p
                    for path in paths
                    for page in client.list_pages(path, label_selector=label_selector or None)
                    for p in page.items
                ]
            except Exception as exc:  # noqa: BLE001 -- the policy's own hooks still run; the backup says what it missed
                pods = []
                warnings.append(f"cannot list pods for their Velero hook annotations: {exc}")
            for pod in pods:
                if (pod.get("metadata") or {}).get("namespace") not in selected:
                    continue
                for phase, into in ((PRE, pre), (POST, post)):
                    found = velero_hook(pod, phase)
                    if found is not None:
                        into.append(found.hook)
                        warnings.extend(found.warnings)
        # Pods are frozen last and thawed first, inside whatever the policy's own hooks do around them.
        return HookPlan((*settings.pre, *pre), (*post, *settings.post), tuple(warnings))

    def run(
        self, phase: str, hooks: Sequence[Hook], context: HookContext, client: Any, *, state: str | None = None
    ) -> list[dict[str, str]]:
        """Run ``hooks`` in order: the failures of those that may continue, as backup errors. A pre hook with
        ``on_error: fail`` that fails raises HookFailed and the hooks after it are not run."""
        errors: list[dict[str, str]] = []
        for position, hook in enumerate(hooks):
            started = time.monotonic()
            try:
                self._run_one(hook, phase, context, client, state)
            except Exception as exc:  # noqa: BLE001 -- every hook failure is named, then stops or is recorded
                message = f"{phase} hook {position + 1} ({hook.describe()}) failed: {exc}"
                self._announce(phase, position, hook, context, exc)
                if phase == PRE and hook.on_error == FAIL:
                    raise HookFailed(f"{message}; on_error is fail, so nothing was backed up") from exc
                errors.append({"resource": f"hook/{phase}", "error": message})
                logger().warning("backup hook failed", extra={"backup_id": context.backup_id, "error": message})
                continue
            logger().info(
                "backup hook ran",
                extra={
                    "backup_id": context.backup_id,
                    "phase": phase,
                    "hook": hook.describe(),
                    "duration_ms": int((time.monotonic() - started) * 1000),
                },
            )
        return errors

    def _announce(self, phase: str, position: int, hook: Hook, context: HookContext, exc: Exception) -> None:
        event = hook_failed(
            cluster=context.cluster,
            backup_id=context.backup_id,
            policy=context.policy,
            phase=phase,
            hook=f"{phase} hook {position + 1}",
            hook_type=hook.kind,
            on_error=hook.on_error,
            error=str(exc),
            target=hook.describe(),
        )
        announce(self._events, event)

    def _run_one(self, hook: Hook, phase: str, context: HookContext, client: Any, state: str | None) -> None:
        if hook.kind == WEBHOOK:
            if self._webhooks is None:
                raise BackupError("webhook hooks are not configured in this deployment")
            self._webhooks.send(hook.url, context.payload(phase, state), context.policy or DEFAULT_KEY, hook.timeout_s)
        elif hook.kind == LAMBDA:
            if self._functions is None:
                raise BackupError("Lambda hooks are not configured in this deployment")
            _within(hook.timeout_s, self._functions().invoke, hook.function, context.payload(phase, state))
        elif hook.kind == EXEC:
            if client is None:
                raise BackupError("the cluster could not be reached, so the command was not run")
            for pod in self._pods(hook, client):
                self._exec(hook, client, pod)
        else:  # pragma: no cover -- parse_hooks admits no other kind
            raise BackupError(f"unknown hook kind {hook.kind!r}")

    def _pods(self, hook: Hook, client: Any) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{hook.namespace}/pods"
        if hook.pod:
            pod = client.get(f"{path}/{hook.pod}")
            return [pod]
        pods = [p for page in client.list_pages(path, label_selector=hook.selector) for p in page.items]
        if not pods:
            raise BackupError(f"no pod in {hook.namespace} matches {hook.selector!r}")
        return pods

    def _exec(self, hook: Hook, client: Any, pod: Mapping[str, Any]) -> None:
        name = str((pod.get("metadata") or {}).get("name") or hook.pod)
        container = hook.container
        if not container:
            containers = (pod.get("spec") or {}).get("containers") or []
            container = str(containers[0].get("name")) if containers else ""
        result = client.exec(hook.namespace, name, container, list(hook.command), hook.timeout_s)
        if result.exit_code != 0:
            detail = (result.stderr or result.stdout).decode(errors="replace").strip()[-MAX_DETAIL:]
            where = f"pod {hook.namespace}/{name} container {container}"
            raise BackupError(f"exit code {result.exit_code} in {where}" + (f": {detail}" if detail else ""))


def run_post_hooks(
    runner: HookRunner,
    hooks: Sequence[Hook],
    context: HookContext,
    client: Any,
    *,
    state: str,
    catalog: Any,
    now: datetime,
) -> list[dict[str, str]]:
    """Run a finished backup's post hooks and keep their failures on its record; the failures."""
    errors = runner.run(POST, hooks, context, client, state=state)
    if errors:
        keep_post_hook_failures(catalog, context.cluster, context.backup_id, errors, now=now)
    return errors


def keep_post_hook_failures(
    catalog: Any, cluster: str, backup_id: str, errors: Sequence[Mapping[str, str]], *, now: datetime
) -> None:
    """Add post-hook failures to the backup record (``extra.post_hooks``); a catalog that refuses is logged, since
    the backup itself is already decided and nothing about it may change now."""
    try:
        catalog.record_post_hooks(cluster, backup_id, errors, now=now)
    except Exception as exc:  # noqa: BLE001 -- the failures are still logged and returned
        logger().warning(
            "post hook failures not recorded on the backup",
            extra={"backup_id": backup_id, "error": f"{type(exc).__name__}: {exc}"},
        )


def _within(timeout: float, call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)``, or BackupError once ``timeout`` seconds pass (the call may go on in its thread)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lifeboat-hook")
    try:
        return pool.submit(call, *args).result(timeout=timeout)
    except FutureTimeout as exc:
        raise BackupError(f"no answer within {timeout:g}s") from exc
    finally:
        pool.shutdown(wait=False)
