"""A policy's verify block: defaults, every problem named with its path, and a round trip."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core.verification import Check, VerifyPolicy, parse_verify


def _parse(data: Any) -> tuple[VerifyPolicy | None, list[str]]:
    problems: list[str] = []
    return parse_verify(data, "policies[0] (shop).verify", problems), problems


def test_absent_means_no_verification() -> None:
    assert _parse(None) == (None, [])


def test_defaults() -> None:
    block, problems = _parse({"schedule": "0 4 * * 0"})

    assert problems == []
    assert block is not None
    assert block.kinds == ("resources",)
    assert (block.scratch_prefix, block.timeout_s, block.target_cluster, block.checks) == ("lbv-", 1800, None, ())
    assert block.schedule.cron == "0 4 * * 0"
    assert block.schedule.timezone == "UTC"


def test_a_full_block_round_trips() -> None:
    data = {
        "schedule": {"cron": "30 3 * * *", "timezone": "Europe/Berlin"},
        "kinds": ["volumes", "resources"],
        "target_cluster": "staging",
        "scratch_prefix": "check-",
        "timeout": 900,
        "rto_target_minutes": 20,
        "checks": [
            {"http": {"service": "web", "namespace": "shop", "port": 8080, "path": "/healthz"}},
            {"job": {"image": "registry.example/smoke:1", "namespace": "shop", "command": ["./smoke"]}},
        ],
    }
    block, problems = _parse(data)

    assert problems == []
    assert block is not None
    assert block.kinds == ("resources", "volumes")
    assert block.checks[0] == Check("http", "shop", service="web", port=8080, path="/healthz")
    assert block.checks[0].name == "http shop/web:8080/healthz"
    assert block.checks[1].command == ("./smoke",)
    again, problems = _parse(block.to_dict())
    assert problems == []
    assert again == block


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "policies[0] (shop).verify.schedule: required"),
        ({"schedule": "not cron"}, "policies[0] (shop).verify.schedule"),
        ({"schedule": "0 4 * * *", "kinds": ["logs"]}, "verify.kinds: unknown kinds logs"),
        ({"schedule": "0 4 * * *", "kinds": []}, "verify.kinds: must be a non-empty list"),
        ({"schedule": "0 4 * * *", "timeout": 0}, "verify.timeout: must be a number of seconds between 1 and"),
        ({"schedule": "0 4 * * *", "rto_target_minutes": True}, "verify.rto_target_minutes: must be a positive"),
        ({"schedule": "0 4 * * *", "scratch_prefix": "Prod_"}, "verify.scratch_prefix: must be 1-10"),
        ({"schedule": "0 4 * * *", "retries": 3}, "verify: unknown fields retries"),
        ({"schedule": "0 4 * * *", "checks": [{"ping": {}}]}, "verify.checks[0]: must be one of"),
        ({"schedule": "0 4 * * *", "checks": [{"http": {"namespace": "shop"}}]}, "checks[0].http.service: required"),
        (
            {"schedule": "0 4 * * *", "checks": [{"http": {"service": "w", "namespace": "s", "path": "x"}}]},
            "checks[0].http.path: must start with '/'",
        ),
        ({"schedule": "0 4 * * *", "checks": [{"job": {"namespace": "shop"}}]}, "checks[0].job.image: required"),
        (
            {"schedule": "0 4 * * *", "checks": [{"job": {"image": "i", "namespace": "shop", "command": "run"}}]},
            "checks[0].job.command: must be a list of strings",
        ),
        ({"schedule": "0 4 * * *", "checks": [{"job": {"image": "i"}}]}, "checks[0].job.namespace: required"),
        ("weekly", "verify: must be a mapping"),
    ],
)
def test_every_problem_names_its_field(data: Any, problem: str) -> None:
    block, problems = _parse(data)

    assert block is None
    assert any(problem in p for p in problems), problems


def test_every_problem_is_collected_at_once() -> None:
    _, problems = _parse({"schedule": "0 4 * * *", "kinds": ["x"], "timeout": -1, "scratch_prefix": 3})
    assert len(problems) == 3


def test_scratch_namespaces_are_valid_and_distinct() -> None:
    from chalicelib.core.verification import scratch_namespace

    assert scratch_namespace("lbv-", "v1a2b3", "shop") == "lbv-v1a2b3-shop"
    long_a, long_b = "a" * 60 + "-one", "a" * 60 + "-two"
    first, second = scratch_namespace("lbv-", "v1a2b3", long_a), scratch_namespace("lbv-", "v1a2b3", long_b)
    assert first != second
    assert all(len(n) <= 63 and n[0].isalnum() and n[-1].isalnum() for n in (first, second))
