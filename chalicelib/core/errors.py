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
