"""Every hook failure is announced ("Hook Failed"), whether it stops the backup or is recorded and passed."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.backup.hooks import HookContext, HookFailed, HookRunner
from chalicelib.core.events import HOOK_FAILED
from chalicelib.core.hooks import HookSettings


class Bus:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        self.events.append((detail_type, detail))


CONTEXT = HookContext(backup_id="20261202T000000Z-abcdef", cluster="prod", policy="shop")


def _hooks(on_error: str) -> HookSettings:
    return HookSettings.from_dict({"pre": [{"webhook": {"url": "https://hooks.example/freeze", "on_error": on_error}}]})


def test_a_hook_that_fails_and_continues_is_announced() -> None:
    bus = Bus()
    errors = HookRunner(events=bus).run("pre", _hooks("continue").pre, CONTEXT, client=None)

    assert len(errors) == 1 and "webhook hooks are not configured" in errors[0]["error"]
    [(detail_type, detail)] = bus.events
    assert detail_type == HOOK_FAILED
    assert detail["backup_id"] == CONTEXT.backup_id and detail["phase"] == "pre"
    assert detail["hook_type"] == "webhook" and detail["on_error"] == "continue"


def test_a_hook_that_fails_the_backup_is_announced_before_it_stops() -> None:
    bus = Bus()
    with pytest.raises(HookFailed):
        HookRunner(events=bus).run("pre", _hooks("fail").pre, CONTEXT, client=None)

    [(_, detail)] = bus.events
    assert detail["on_error"] == "fail" and "hooks.example" in detail["target"]
