"""What a run starts before its claim hears when the run ends (``HeadStart.end``)."""

from __future__ import annotations

import threading

from chalicelib.backup.head_start import HeadStart, Opened


class Early:
    """An early check of the parent's sample, as ``Opened.early`` holds it."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()


def _unreadable_cluster() -> None:
    raise ConnectionError("the API server is unreachable")


def test_ending_the_run_stops_the_early_check_of_the_parents_sample():
    early = Early()
    opened = Opened(repo=None, index={}, parent_cluster_uid=None, prior=None, early=early)
    head = HeadStart(_unreadable_cluster, lambda guess, parent: opened)
    assert head.opening is not None and head.opening.result(timeout=10) is opened
    assert not early.stopped.is_set()  # it goes on while the run does
    head.end()
    assert early.stopped.wait(timeout=10)


def test_ending_a_run_whose_repository_did_not_open_is_harmless():
    def failing(guess: object, parent: object) -> Opened:
        raise RuntimeError("the repository is unreachable")

    head = HeadStart(_unreadable_cluster, failing)
    assert head.opening is not None and isinstance(head.opening.exception(timeout=10), RuntimeError)
    head.end()  # nothing to stop, nothing raised
    no_check = Opened(repo=None, index={}, parent_cluster_uid=None, prior=None)
    quiet = HeadStart(_unreadable_cluster, lambda guess, parent: no_check)
    assert quiet.opening is not None and quiet.opening.result(timeout=10) is no_check
    quiet.end()
