"""The verification queue's messages and run ids: light enough for the dispatcher to import at cold start."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import orjson


def verification_id(policy: str, scheduled_for: str | None) -> str:
    """A scheduled run's id follows from the policy and time (a repeated dispatch names the same run); a run started
    by hand gets a new one. Short enough for a label value and a scratch namespace prefix."""
    seed = f"{policy}@{scheduled_for}" if scheduled_for else f"{policy}@{uuid.uuid4()}"
    return "v" + hashlib.sha256(seed.encode()).hexdigest()[:11]


@dataclass(frozen=True)
class VerifyMessage:
    verification_id: str
    token: str | None = None  # a continuation: the worker token holding the run, which waits for readiness

    def to_json(self) -> str:
        body: dict[str, Any] = {"type": "verify", "verification_id": self.verification_id}
        if self.token:
            body["token"] = self.token
        return orjson.dumps(body).decode()

    @classmethod
    def from_json(cls, body: str) -> VerifyMessage:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"a verification message is not JSON: {body[:80]!r}") from exc
        if not isinstance(data, dict) or data.get("type") != "verify" or not data.get("verification_id"):
            raise ValueError(f"a verification message needs type 'verify' and a verification_id: {body[:80]!r}")
        token = data.get("token")
        return cls(str(data["verification_id"]), str(token) if token else None)
