"""Label and field selectors as kube-apiserver parses them (k8s.io/apimachinery labels and fields packages).

Written here rather than shared with chalicelib: the test server is the oracle the product's own selector code
is checked against, so it must not reuse it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sandbox.kubeapi.errors import ApiError

_SPECIAL = "=!(),<>"
_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def qualified_name_error(key: str) -> str | None:
    """Why `key` is not a valid label key (optional DNS-subdomain prefix and a name), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _PREFIX_RE.match(prefix)):
        return f'prefix part of "{key}" must be a lowercase RFC 1123 subdomain'
    if not name or len(name) > 63 or not _NAME_RE.match(name):
        return (
            f"name part of \"{key}\" must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character, and be at most 63 characters"
        )
    return None


def label_value_error(value: str) -> str | None:
    if len(value) > 63 or not _VALUE_RE.match(value):
        return (
            f"\"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character, and be at most 63 characters"
        )
    return None


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # exists, !exists, =, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!exists":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        if self.op in ("!=", "notin"):
            return value is None or value not in self.values
        if value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.op == "gt" else number < bound


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _SPECIAL:
            two = text[i : i + 2]
            if two in ("==", "!="):
                out.append(two)
                i += 2
            else:
                out.append(ch)
                i += 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            out.append(text[i:j])
            i = j
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> str | None:
        tok = self.peek()
        self.pos += 1
        return tok

    def fail(self, found: str | None, expected: str) -> ApiError:
        return ApiError(400, f"found '{found or ''}', expected: {expected}")

    def identifier(self, expected: str) -> str:
        tok = self.take()
        if tok is None or tok in _SPECIAL or tok in ("==", "!="):
            raise self.fail(tok, expected)
        return tok

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            return _checked(Requirement(self.identifier("identifier after '!'"), "!exists"))
        key = self.identifier("identifier")
        op = self.peek()
        if op is None or op == ",":
            return _checked(Requirement(key, "exists"))
        self.take()
        if op in ("=", "==", "!="):
            nxt = self.peek()
            value = "" if nxt is None or nxt == "," else self.identifier("identifier")
            return _checked(Requirement(key, "!=" if op == "!=" else "=", (value,)))
        if op in ("in", "notin"):
            return _checked(Requirement(key, op, self.value_set()))
        if op in (">", "<"):
            return _checked(Requirement(key, "gt" if op == ">" else "lt", (self.identifier("integer"),)))
        raise self.fail(op, "'=', '!=', '==', 'in', notin'")

    def value_set(self) -> tuple[str, ...]:
        tok = self.take()
        if tok != "(":
            raise self.fail(tok, "'('")
        values: list[str] = []
        while True:
            tok = self.take()
            if tok == ")" and not values:
                message = "unable to parse requirement: for 'in', 'notin' operators, values set can't be empty"
                raise ApiError(400, message)
            if tok in (",", ")") or tok is None:
                raise self.fail(tok, "identifier")
            values.append(tok)
            tok = self.take()
            if tok == ")":
                return tuple(values)
            if tok != ",":
                raise self.fail(tok, "',' or ')'")


def _checked(req: Requirement) -> Requirement:
    problem = qualified_name_error(req.key)
    if problem is None and req.op in ("gt", "lt"):
        try:
            int(req.values[0])
        except ValueError:
            problem = f"for 'Gt', 'Lt' operators, the value must be an integer: {req.values[0]}"
    if problem is None and req.op not in ("gt", "lt"):
        problem = next((p for v in req.values if (p := label_value_error(v))), None)
    if problem:
        raise ApiError(400, f"unable to parse requirement: {problem}")
    return req


def parse_label_selector(text: str) -> list[Requirement]:
    """Requirements of a labelSelector query; an invalid one raises a 400 like the real server."""
    parser = _Parser(text)
    requirements: list[Requirement] = []
    if parser.peek() is None:
        return requirements
    while True:
        requirements.append(parser.requirement())
        tok = parser.take()
        if tok is None:
            return requirements
        if tok != ",":
            raise parser.fail(tok, "',' or 'end of string'")


def labels_match(requirements: list[Requirement], labels: Mapping[str, str]) -> bool:
    return all(r.matches(labels) for r in requirements)


@dataclass(frozen=True, slots=True)
class FieldTerm:
    field: str
    value: str
    negate: bool

    def matches(self, value: str | None) -> bool:
        return (value == self.value) != self.negate


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _find_operator(term: str) -> tuple[str, str, str] | None:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
        i += 1
    return None


def parse_field_selector(text: str, supported: tuple[str, ...]) -> list[FieldTerm]:
    """Terms of a fieldSelector query; unknown fields and bad syntax raise a 400 like the real server."""
    terms: list[FieldTerm] = []
    if not text.strip():
        return terms
    for raw in _split_unescaped(text, ","):
        parsed = _find_operator(raw)
        if parsed is None:
            raise ApiError(400, f"invalid selector: '{text}'; can't understand '{raw}'")
        field, op, value = parsed
        field = field.strip()
        if field not in ("metadata.name", "metadata.namespace") and field not in supported:
            raise ApiError(400, f"field label not supported: {field}")
        terms.append(FieldTerm(field, _unescape(value), op == "!="))
    return terms


def fields_match(terms: list[FieldTerm], lookup: Callable[[str], str | None]) -> bool:
    return all(t.matches(lookup(t.field)) for t in terms)
