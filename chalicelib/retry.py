"""Which failures are worth another attempt, how workers say so, and how a failure is described in a record."""

from __future__ import annotations

MAX_ATTEMPTS = 3  # attempts of one piece of work (a one-shot backup, a shard) before it fails for good
RETRY_DELAY_S = 10  # times the attempt number: the delay of the message that retries the work


class RetryLater(Exception):
    """The work cannot be done now (a transient failure, or another worker owns it): the queue delivers it again.

    With ``delay_s`` the work was released and the message handler sends it again after that delay (acknowledging
    the message it handles); without, the message goes back to the queue for its visibility timeout.
    """

    def __init__(self, message: str, *, delay_s: int | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class Transient(Exception):
    """Base of use-case errors that a later attempt may not meet (a dependency down or not answering)."""


def retry_delay_s(attempt: int) -> int:
    """The delay before the attempt after failed attempt ``attempt`` (1-based)."""
    return RETRY_DELAY_S * max(1, attempt)


def is_transient(exc: BaseException) -> bool:
    """Throttling, a dependency down, an API server that is unreachable, in ``exc`` or what it was raised from.

    A missing or forbidden object is final; so is everything this function does not know.
    """
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if _transient_itself(link):
            return True
        seen.add(id(link))
        link = link.__cause__
    return False


def _transient_itself(exc: BaseException) -> bool:
    # Imported here: the adapters' error modules pull in their packages, which a cold start may not need.
    from chalicelib.aws.errors import AwsUnavailable
    from chalicelib.catalog.errors import Throttled
    from chalicelib.kube.errors import ServerError, TooManyRequests, Unreachable
    from chalicelib.repository.errors import AccessDenied, ObjectNotFound, StorageError

    if isinstance(exc, Transient | AwsUnavailable | Throttled | ServerError | TooManyRequests | Unreachable):
        return True
    # A storage error other than a missing or forbidden object (S3 throttling or 503, a network error).
    return isinstance(exc, StorageError) and not isinstance(exc, ObjectNotFound | AccessDenied)


def describe(exc: BaseException, limit: int = 2048) -> str:
    """``Type: message``, with the cause when it says more, cut to ``limit`` (records have a size limit)."""
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    if cause is not None and str(cause) not in text:
        text += f" (caused by {type(cause).__name__}: {cause})"
    return text[:limit]
