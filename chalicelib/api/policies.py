"""``/v1/policies``: the policy routes, for a client whose grant covers ``policies`` of the clusters involved.

The signature covers method, path and body, so a captured request cannot delete or overwrite another policy. A
DELETE still names the policy in its body (``{"name": "<policy>"}``), as it always has. A policy outside the grant
is invisible (404) to reads and deletes; a policy file naming any cluster outside the grant is refused (403) whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import orjson

from chalicelib.api.auth import authenticate, require
from chalicelib.api.errors import MalformedRequest
from chalicelib.api.grants import Action, Caller
from chalicelib.api.responses import Reply, answer
from chalicelib.api.signature import SignatureVerifier, SignedRequest
from chalicelib.catalog.policies import PolicyRecord
from chalicelib.core.errors import InvalidPolicy
from chalicelib.core.policies import parse_policy_document
from chalicelib.scheduling.errors import PolicyConflict, PolicyNotFound, SchedulingError
from chalicelib.scheduling.policies import PolicyService, load_policy_text, policy_view

_STATUS = {PolicyNotFound: (404, "NotFound"), PolicyConflict: (409, "Conflict")}


class PolicyApi:
    """Apply, list, read and delete backup policies."""

    def __init__(self, verifier: SignatureVerifier, policies: PolicyService) -> None:
        self._verifier = verifier
        self._policies = policies

    def list(self, headers: Mapping[str, str]) -> Reply:
        def action() -> Reply:
            caller = self._caller(headers, SignedRequest.of("GET", "/v1/policies", None, headers))
            records = [r for r in self._policies.list() if caller.may(Action.POLICIES, r.policy.cluster)]
            return Reply(200, {"policies": [policy_view(r) for r in records]})

        return _answer(action)

    def get(self, name: str, headers: Mapping[str, str]) -> Reply:
        def action() -> Reply:
            caller = self._caller(headers, SignedRequest.of("GET", f"/v1/policies/{name}", None, headers))
            record = self._visible(caller, name)
            runs = [run.to_dict() for run in self._policies.runs(name, limit=10)]
            return Reply(200, {**policy_view(record), "recent_runs": runs})

        return _answer(action)

    def apply(self, body: bytes, headers: Mapping[str, str], method: str = "PUT") -> Reply:
        """Body: a policy file (YAML or JSON, ``{"policies": [...]}``)."""

        def action() -> Reply:
            caller = self._caller(headers, SignedRequest.of(method, "/v1/policies", None, headers, body or b""))
            document = load_policy_text(body or b"")
            policies = parse_policy_document(document)
            for cluster in sorted({policy.cluster for policy in policies}):
                require(caller, Action.POLICIES, cluster)
            # A verification restores into its target cluster: the caller must be allowed to restore there.
            for target in sorted({p.verify.target_cluster for p in policies if p.verify and p.verify.target_cluster}):
                require(caller, Action.RESTORE_INTO, target)
            applied = self._policies.apply_document(document)
            return Reply(200, {"applied": [a.__dict__ for a in applied]})

        return _answer(action)

    def delete(self, name: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        def action() -> Reply:
            signed = SignedRequest.of("DELETE", f"/v1/policies/{name}", None, headers, body or b"")
            caller = self._caller(headers, signed)
            try:
                named = orjson.loads(body or b"{}").get("name")
            except (orjson.JSONDecodeError, AttributeError) as exc:
                raise MalformedRequest('a signed DELETE carries the body {"name": "<policy>"}') from exc
            if named != name:
                raise MalformedRequest(f'a signed DELETE must name the policy in its body: {{"name": "{name}"}}')
            self._visible(caller, name)
            record = self._policies.delete(name)
            return Reply(200, {"deleted": record.policy.name, "cluster": record.policy.cluster})

        return _answer(action)

    def _caller(self, headers: Mapping[str, str], request: SignedRequest) -> Caller:
        return authenticate(self._verifier, headers, request).caller

    def _visible(self, caller: Caller, name: str) -> PolicyRecord:
        record = self._policies.get(name)
        if not caller.may(Action.POLICIES, record.policy.cluster):
            raise PolicyNotFound(f"policy {name!r} not found")
        return record


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
