"""``/v1/policies``: the policy routes, authenticated like the restore routes.

A caller is authorized by IAM (API Gateway verified a SigV4 signature and set ``identity.userArn``) or by the
API's HMAC signature (``chalicelib/api/signature.py``) over the raw body. The signature covers the body
only, so a DELETE must carry ``{"name": "<policy>"}`` as its signed body: a signature captured from another request
cannot delete a policy it does not name. Reads are signed over the empty body, as ``GET /v1/restores/{id}`` is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from chalicelib.api.auth import authorize
from chalicelib.api.errors import MalformedRequest
from chalicelib.api.responses import Reply, answer
from chalicelib.api.signature import SignatureVerifier
from chalicelib.core.errors import InvalidPolicy
from chalicelib.scheduling.errors import PolicyConflict, PolicyNotFound, SchedulingError
from chalicelib.scheduling.policies import PolicyService, policy_view

_STATUS = {PolicyNotFound: (404, "NotFound"), PolicyConflict: (409, "Conflict")}


class PolicyApi:
    """Apply, list, read and delete backup policies."""

    def __init__(self, verifier: SignatureVerifier, policies: PolicyService) -> None:
        self._verifier = verifier
        self._policies = policies

    def list(self, headers: Mapping[str, str], identity: Mapping[str, Any] | None = None) -> Reply:
        def action() -> Reply:
            self._authorize(headers, b"", identity)
            return Reply(200, {"policies": [policy_view(r) for r in self._policies.list()]})

        return _answer(action)

    def get(self, name: str, headers: Mapping[str, str], identity: Mapping[str, Any] | None = None) -> Reply:
        def action() -> Reply:
            self._authorize(headers, b"", identity)
            record = self._policies.get(name)
            runs = [run.to_dict() for run in self._policies.runs(name, limit=10)]
            return Reply(200, {**policy_view(record), "recent_runs": runs})

        return _answer(action)

    def apply(self, body: bytes, headers: Mapping[str, str], identity: Mapping[str, Any] | None = None) -> Reply:
        """Body: a policy file (YAML or JSON, ``{"policies": [...]}``)."""

        def action() -> Reply:
            self._authorize(headers, body or b"", identity)
            applied = self._policies.apply_text(body or b"")
            return Reply(200, {"applied": [a.__dict__ for a in applied]})

        return _answer(action)

    def delete(
        self, name: str, body: bytes, headers: Mapping[str, str], identity: Mapping[str, Any] | None = None
    ) -> Reply:
        def action() -> Reply:
            signed = self._authorize(headers, body or b"", identity)
            if signed:
                try:
                    named = orjson.loads(body or b"{}").get("name")
                except (orjson.JSONDecodeError, AttributeError) as exc:
                    raise MalformedRequest('a signed DELETE carries the body {"name": "<policy>"}') from exc
                if named != name:
                    raise MalformedRequest(f'a signed DELETE must name the policy in its body: {{"name": "{name}"}}')
            record = self._policies.delete(name)
            return Reply(200, {"deleted": record.policy.name, "cluster": record.policy.cluster})

        return _answer(action)

    def _authorize(self, headers: Mapping[str, str], body: bytes, identity: Mapping[str, Any] | None) -> bool:
        """True when the request was authorized by its HMAC signature, False when by IAM."""
        return authorize(self._verifier, headers, body, identity)


def _answer(action: Callable[[], Reply]) -> Reply:
    def policy_action() -> Reply:
        try:
            return action()
        except InvalidPolicy as exc:
            return Reply(
                422,
                {"error": "InvalidPolicy", "message": "the policy file does not validate", "problems": exc.problems},
            )
        except SchedulingError as exc:
            status, code = _STATUS.get(type(exc), (422, type(exc).__name__))
            return Reply(status, {"error": code, "message": str(exc)})

    return answer(policy_action, refused="policy request refused")
