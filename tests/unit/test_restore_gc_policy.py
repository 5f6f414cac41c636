from __future__ import annotations

import gc
import threading

from chalicelib.restore.gc_policy import FULL_COLLECTION_AFTER, rare_full_collections


def test_full_collections_are_rare_inside_and_the_thresholds_come_back() -> None:
    before = gc.get_threshold()
    with rare_full_collections():
        inside = gc.get_threshold()
        with rare_full_collections():  # nested: still rare, and the outer block still owns the saved thresholds
            assert gc.get_threshold() == inside
        assert gc.get_threshold() == inside
    assert inside == (before[0], before[1], max(before[2], FULL_COLLECTION_AFTER))
    assert inside[2] > 10
    assert gc.get_threshold() == before


def test_the_thresholds_come_back_after_an_error_and_after_the_last_of_concurrent_blocks() -> None:
    before = gc.get_threshold()
    try:
        with rare_full_collections():
            raise RuntimeError("the restore failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before

    entered, release = threading.Event(), threading.Event()

    def other_restore() -> None:
        with rare_full_collections():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=other_restore)
    thread.start()
    assert entered.wait(5)
    with rare_full_collections():
        pass
    assert gc.get_threshold()[2] == max(before[2], FULL_COLLECTION_AFTER)  # the other restore is still running
    release.set()
    thread.join(5)
    assert gc.get_threshold() == before


def test_a_restore_and_its_plan_run_with_rare_full_collections() -> None:
    from chalicelib.restore import service

    seen: list[tuple[int, int, int]] = []

    class Probe(service.RestoreService):
        def __init__(self) -> None:
            pass

        def _run(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            seen.append(gc.get_threshold())
            return "result"

        def _plan(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            seen.append(gc.get_threshold())
            return "plan"

    before = gc.get_threshold()
    outcome: object = Probe().run(object(), object())  # type: ignore[arg-type]
    assert outcome == "result"
    plan: object = Probe().plan(object(), object())  # type: ignore[arg-type]
    assert plan == "plan"  # a dry run's plan, asked for on its own, runs under the same policy
    assert seen == [(before[0], before[1], max(before[2], FULL_COLLECTION_AFTER))] * 2
    assert gc.get_threshold() == before
