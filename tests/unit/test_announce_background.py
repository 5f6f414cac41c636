"""Events announced within ``announcing_in_background``: the caller goes on, the order holds, the block waits."""

from __future__ import annotations

import threading
from typing import Any

from chalicelib.aws import events
from chalicelib.aws.events import announce, announcing_in_background
from chalicelib.core.events import Event


class SlowBus:
    """Puts an event only once ``gate`` is open; records which thread put it."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = threading.Event()
        self.put: list[tuple[str, str]] = []
        self._fail = fail

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.gate.wait(timeout=10)
        if self._fail:
            raise RuntimeError("bus down")
        self.put.append((detail_type, threading.current_thread().name))


def _event(name: str) -> Event:
    return Event(name, {"n": name})


def test_the_caller_goes_on_while_the_event_is_put_and_the_block_waits_for_it() -> None:
    bus = SlowBus()
    with announcing_in_background():
        assert announce(bus, _event("Backup Started"))
        assert bus.put == []  # not put yet: the bus waits for the gate, the caller did not
        announce(bus, _event("Backup Completed"))
        bus.gate.set()
    # The block ended only once both were put, in the order they were announced, on another thread.
    assert [name for name, _ in bus.put] == ["Backup Started", "Backup Completed"]
    assert all(thread != threading.current_thread().name for _, thread in bus.put)


def test_outside_the_block_an_event_is_put_before_announce_returns() -> None:
    bus = SlowBus()
    bus.gate.set()
    announce(bus, _event("Backup Started"))
    assert bus.put == [("Backup Started", threading.current_thread().name)]


def test_a_nested_block_is_the_outer_one() -> None:
    bus = SlowBus()
    with announcing_in_background():
        with announcing_in_background():
            announce(bus, _event("Backup Started"))
        assert bus.put == []  # the inner block's end does not wait: the outer one does
        bus.gate.set()
    assert [name for name, _ in bus.put] == ["Backup Started"]


def test_other_threads_announce_as_before() -> None:
    bus = SlowBus()
    bus.gate.set()
    seen: list[list[tuple[str, str]]] = []
    with announcing_in_background():

        def other() -> None:
            announce(bus, _event("Hook Failed"))
            seen.append(list(bus.put))

        thread = threading.Thread(target=other, name="other")
        thread.start()
        thread.join()
    assert seen == [[("Hook Failed", "other")]]


def test_a_bus_that_fails_in_the_background_is_logged_not_raised(monkeypatch) -> None:
    warnings: list[tuple[str, dict[str, Any]]] = []

    class Logger:
        def warning(self, message: str, extra: dict[str, Any]) -> None:
            warnings.append((message, extra))

    monkeypatch.setattr(events, "logger", Logger)
    bus = SlowBus(fail=True)
    bus.gate.set()
    with announcing_in_background():
        announce(bus, _event("Backup Completed"))
    assert warnings == [("event not published", {"detail_type": "Backup Completed", "error": "bus down"})]
