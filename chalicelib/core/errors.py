"""Errors raised by the pure core."""

from __future__ import annotations


class CoreError(Exception):
    """Base class for errors of the pure core."""


class InvalidSelector(CoreError):
    """A label or field selector could not be parsed."""


class InvalidScope(CoreError):
    """A backup scope is malformed (bad glob, empty include list, ...)."""


class InvalidStateTransition(CoreError):
    """A backup or restore record was asked to move backwards or sideways."""


class FormatError(CoreError):
    """Stored repository data does not follow the format it claims."""


class InvalidPolicy(CoreError):
    """A backup policy or policy file does not validate; ``problems`` lists every field that is wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)
