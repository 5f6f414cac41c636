"""``lifeboat schedule``: Velero's schedules, which here are policies (the same item a policy file writes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.cli.commands import scope_from_args
from chalicelib.cli.output import EXIT_OK, CliError, console, emit_json
from chalicelib.cli.policies import policies_delete, policies_describe, policies_list
from chalicelib.core.policies import scope_dict


def ttl_keep_last(cron: str, timezone: str, ttl_seconds: int, *, now: datetime | None = None) -> int:
    """Velero's ``--ttl`` as retention: keep the number of backups the schedule makes in that time (at least one).

    Counted over the next ``ttl`` of the schedule itself, so an hourly schedule with ``--ttl 720h`` keeps 720
    backups and a daily one keeps 30: each backup lives about as long as Velero's TTL would let it.
    """
    from zoneinfo import ZoneInfo

    from croniter import croniter

    start = (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone))
    end = start + timedelta(seconds=ttl_seconds)
    runs = 0
    it = croniter(cron, start)
    # A schedule every minute for a year is 525,600 runs: counting stops where no retention would need more.
    while runs < 100_000 and it.get_next(datetime) <= end:
        runs += 1
    return max(runs, 1)


def create(args: Any, services: Any) -> int:
    """Create or replace a schedule: a policy with this cron, scope and retention."""
    spec: dict[str, Any] = {
        "name": args.name,
        "cluster": args.cluster,
        "schedule": {"cron": args.schedule, "timezone": args.timezone},
        "scope": scope_dict(scope_from_args(args)),
        "enabled": not args.paused,
    }
    if args.ttl is not None:
        spec["retention"] = {"keep_last": ttl_keep_last(args.schedule, args.timezone, args.ttl)}
    applied = services.policy_service().apply_document({"policies": [spec]})
    return _print_applied(args, applied)


def _set_enabled(args: Any, services: Any, enabled: bool) -> int:
    service = services.policy_service()
    policy = service.get(args.name).policy
    if policy.enabled == enabled:
        raise CliError(f"schedule {args.name} is already {'running' if enabled else 'paused'}")
    spec = policy.to_dict()
    spec["enabled"] = enabled
    return _print_applied(args, service.apply_document({"policies": [spec]}))


def pause(args: Any, services: Any) -> int:
    return _set_enabled(args, services, False)


def unpause(args: Any, services: Any) -> int:
    return _set_enabled(args, services, True)


def get(args: Any, services: Any) -> int:
    if args.name:
        return describe(args, services)
    return policies_list(args, services)


def describe(args: Any, services: Any) -> int:
    return policies_describe(args, services)


def delete(args: Any, services: Any) -> int:
    return policies_delete(args, services)


def _print_applied(args: Any, applied: list[Any]) -> int:
    if args.output != "table":
        emit_json([a.__dict__ for a in applied])
        return EXIT_OK
    for a in applied:
        when = f"next run {a.next_run_at}" if a.next_run_at else "paused"
        console().print(f"schedule {a.name} (cluster {a.cluster}): {a.change}; {when}")
    return EXIT_OK


__all__ = ["create", "delete", "describe", "get", "pause", "ttl_keep_last", "unpause"]
