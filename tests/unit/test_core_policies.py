"""Policy files: parsing and validation errors that name the policy, the field and the cause."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from chalicelib.core.errors import InvalidPolicy
from chalicelib.core.policies import Policy, Retention, parse_policy_document

EXAMPLE = """
policies:
  - name: shop-nightly
    cluster: prod
    schedule: {cron: "0 2 * * *", timezone: Europe/Berlin, starting_deadline_seconds: 3600}
    scope: {include_namespaces: ["shop*"]}
    retention: {keep_last: 3, keep_daily: 7, keep_weekly: 4, keep_monthly: 6}
    rpo_target_minutes: 1500
    enabled: true
"""


def good(**overrides: Any) -> dict[str, Any]:
    doc = yaml.safe_load(EXAMPLE)["policies"][0]
    doc.update(overrides)
    return dict(doc)


def problems_of(*policies: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidPolicy) as info:
        parse_policy_document({"policies": list(policies)})
    return info.value.problems


def test_the_documented_example_parses() -> None:
    (policy,) = parse_policy_document(yaml.safe_load(EXAMPLE))
    assert policy.name == "shop-nightly" and policy.cluster == "prod"
    assert policy.schedule.cron == "0 2 * * *" and policy.schedule.timezone == "Europe/Berlin"
    assert policy.schedule.starting_deadline_seconds == 3600
    assert policy.scope.include_namespaces == ("shop*",)
    assert policy.retention == Retention(keep_last=3, keep_daily=7, keep_weekly=4, keep_monthly=6)
    assert policy.rpo_target_minutes == 1500 and policy.enabled is True


def test_round_trip_through_to_dict() -> None:
    (policy,) = parse_policy_document(yaml.safe_load(EXAMPLE))
    assert Policy.from_dict(policy.to_dict()) == policy


def test_defaults_utc_and_no_retention() -> None:
    doc = good(schedule={"cron": "0 3 * * *"})
    del doc["retention"], doc["rpo_target_minutes"], doc["enabled"]
    (policy,) = parse_policy_document({"policies": [doc]})
    assert policy.schedule.timezone == "UTC"
    assert policy.retention.empty and policy.retention.summary() == "keep everything"
    assert policy.rpo_target_minutes is None and policy.enabled


def test_bad_cron_is_named() -> None:
    (problem,) = problems_of(good(schedule={"cron": "0 2 * *"}))
    assert problem.startswith("policies[0] (shop-nightly).schedule.cron:")
    assert "has 4 fields" in problem


def test_unknown_timezone_is_named() -> None:
    (problem,) = problems_of(good(schedule={"cron": "0 2 * * *", "timezone": "Europe/Berln"}))
    assert "schedule.timezone" in problem and "unknown timezone 'Europe/Berln'" in problem


def test_overlapping_names_are_refused_even_when_case_differs() -> None:
    problems = problems_of(good(), good(cluster="staging"), good(name="Shop-Nightly"))
    assert any("policies[1] (shop-nightly): name overlaps policies[0]" in p for p in problems)
    assert any("policies[2] (Shop-Nightly): name overlaps policies[0]" in p for p in problems)


@pytest.mark.parametrize(
    ("scope", "needle"),
    [
        (None, "scope: is empty"),
        ({}, "scope: is empty"),
        ({"include_namespaces": []}, "include_namespaces: is an empty list"),
        ({"exclude_namespaces": ["*"]}, "'*' excludes every namespace"),
        ({"include_namespaces": "shop"}, "include_namespaces: must be a list of strings"),
        ({"namespaces": ["shop"]}, "unknown scope fields: namespaces"),
        ({"include_namespaces": ["a"], "label_selector": "app in (x"}, "scope:"),
    ],
)
def test_empty_or_invalid_scope_is_refused(scope: Any, needle: str) -> None:
    doc = good()
    if scope is None:
        del doc["scope"]
    else:
        doc["scope"] = scope
    (problem,) = problems_of(doc)
    assert needle in problem and "(shop-nightly).scope" in problem


def test_every_problem_of_every_policy_is_reported_at_once() -> None:
    problems = problems_of(
        good(name="a", schedule={"cron": "nope"}, retention={"keep_daily": -3}, rpo_target_minutes=0),
        good(name="Bad_Name", enabled="yes", colour="blue"),
    )
    joined = "\n".join(problems)
    for needle in (
        "policies[0] (a).schedule.cron",
        "policies[0] (a).retention.keep_daily: must be a non-negative integer",
        "policies[0] (a).rpo_target_minutes",
        "policies[1] (Bad_Name).name",
        "policies[1] (Bad_Name).enabled",
        "policies[1] (Bad_Name): unknown fields colour",
    ):
        assert needle in joined, needle
    assert len(problems) == 6


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ([], "expected a mapping with a 'policies' list"),
        ({"policies": []}, "must be a non-empty list"),
        ({"policies": [good()], "extra": 1}, "unknown top-level keys extra"),
        ({"policies": ["shop"]}, "policies[0]: must be a mapping"),
    ],
)
def test_malformed_files(doc: Any, needle: str) -> None:
    with pytest.raises(InvalidPolicy) as info:
        parse_policy_document(doc)
    assert needle in str(info.value)


def test_retention_keep_all_and_summary() -> None:
    retention = Retention(keep_last=2, keep_monthly=-1)
    assert retention.summary() == "2 last, all monthly"
    with pytest.raises(InvalidPolicy, match="retention.keep_weekly"):
        Retention(keep_weekly=-2)


def test_bad_cluster_name() -> None:
    (problem,) = problems_of(good(cluster="prod/eu"))
    assert "cluster: 'prod/eu'" in problem
