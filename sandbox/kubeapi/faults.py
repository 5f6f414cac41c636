"""Test controls: injected failures, forbidden resources, and the log of requests served."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

from sandbox.kubeapi.errors import ApiError, fault


class RequestRecord(NamedTuple):
    """One request as served: the query holds the last value of each parameter."""

    method: str
    path: str
    query: dict[str, str]
    status: int


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class _Fault:
    status: int
    method: str | None
    path: re.Pattern[str] | None
    first: int  # 1-based index of the first matching request that fails
    count: int
    retry_after: int | None
    after: bool  # fail the response only after the request took effect
    seen: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or bool(self.path.search(path)))


@dataclass
class Faults:
    """Make the nth matching request (and the next count-1) fail with a given status and a proper Status body."""

    _rules: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(
        self,
        status: int,
        *,
        method: str | None = None,
        path: str | None = None,
        nth: int = 1,
        count: int = 1,
        retry_after: int | None = None,
        after: bool = False,
    ) -> None:
        """`path` is a regex searched in the URL path; with after=True the request is served first (a write
        happens) and only its answer is replaced, like a response lost after the server committed."""
        if nth < 1 or count < 1:
            raise ValueError("nth and count start at 1")
        rule = _Fault(
            status,
            method.upper() if method else None,
            re.compile(path) if path else None,
            nth,
            count,
            retry_after,
            after,
        )
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def check(self, method: str, path: str) -> tuple[ApiError | None, bool]:
        """The error to answer this request with, if any, and whether to serve the request first."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                rule.seen += 1
                if rule.first <= rule.seen < rule.first + rule.count:
                    return fault(rule.status, rule.retry_after), rule.after
        return None, False


_GROUP_RESOURCE = re.compile(r"^[a-z0-9-]+(\.[a-z0-9.-]+)?$")


@dataclass(frozen=True)
class ForbidRule:
    group: str | None  # matched on the resource when set, else `path` is a regex on the URL path
    plural: str | None
    path: re.Pattern[str] | None
    verbs: frozenset[str]

    @classmethod
    def parse(cls, target: str, verbs: tuple[str, ...] | list[str]) -> ForbidRule:
        if _GROUP_RESOURCE.match(target):
            plural, _, group = target.partition(".")
            return cls(group, plural, None, frozenset(verbs))
        return cls(None, None, re.compile(target), frozenset(verbs))

    def matches(self, verb: str, group: str, plural: str, path: str) -> bool:
        if verb not in self.verbs and "*" not in self.verbs:
            return False
        if self.path is not None:
            return bool(self.path.search(path))
        return self.group == group and self.plural == plural
