"""``lifeboat api-clients add|list|rotate|revoke``: who may call the signed API, and with which grant."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from chalicelib.cli.output import EXIT_OK, CliError, console, emit_json, table

_GRANT_HELP = (
    "action=cluster[,cluster...] with action one of read, restore_from, restore_into, policies; "
    "'*' for every cluster; repeat for several actions"
)


def add_parsers(sub: Any, add_aws_options: Callable[[argparse.ArgumentParser], None]) -> None:
    clients = sub.add_parser("api-clients", help="callers of the signed API").add_subparsers(
        dest="action", required=True
    )
    p = clients.add_parser("add", help="a new client with its grant; prints its key once")
    add_aws_options(p)
    p.add_argument("client_id", help="lower-case letters, digits and ._- (the keyId it signs with)")
    p.add_argument("--grant", action="append", default=[], metavar="ACTION=CLUSTERS", help=_GRANT_HELP)
    p.add_argument("--description", default="")
    p = clients.add_parser("list", help="every client and its grant (never a key)")
    add_aws_options(p)
    p = clients.add_parser("rotate", help="a new key; the previous one works for the grace period only")
    add_aws_options(p)
    p.add_argument("client_id")
    p.add_argument("--grace-minutes", type=float, default=60.0, help="how long the previous key keeps working")
    p = clients.add_parser("revoke", help="no key of the client works any more")
    add_aws_options(p)
    p.add_argument("client_id")


def add(args: Any, services: Any) -> int:
    from chalicelib.api.grants import Grant

    if not args.grant:
        raise CliError(f"api-clients add {args.client_id}: give at least one --grant ({_GRANT_HELP})")
    record, key = services.api_client_service().add(
        args.client_id, Grant.parse(args.grant), description=args.description
    )
    return _print_key(args, record, key, "created")


def list_clients(args: Any, services: Any) -> int:
    from chalicelib.api.clients import describe

    records = services.api_client_service().list()
    if args.output != "table":
        emit_json([describe(r) for r in records])
        return EXIT_OK
    rows = [
        [
            r.client_id,
            "; ".join(f"{k}={','.join(v)}" for k, v in sorted(r.grant.items()) if v),
            r.created_at,
            r.rotated_at,
            r.previous_valid_until,
            r.revoked_at,
        ]
        for r in records
    ]
    columns = ["client", "grant", "created", "rotated", "previous key until", "revoked"]
    console().print(table("API clients", columns, rows))
    return EXIT_OK


def rotate(args: Any, services: Any) -> int:
    if args.grace_minutes < 0:
        raise CliError(f"api-clients rotate {args.client_id}: --grace-minutes must not be negative")
    record, key = services.api_client_service().rotate(args.client_id, grace=timedelta(minutes=args.grace_minutes))
    return _print_key(args, record, key, "rotated")


def revoke(args: Any, services: Any) -> int:
    from chalicelib.api.clients import describe

    record = services.api_client_service().revoke(args.client_id)
    if args.output != "table":
        emit_json(describe(record))
    else:
        console().print(f"API client {record.client_id} revoked at {record.revoked_at}; its key was deleted")
    return EXIT_OK


def _print_key(args: Any, record: Any, key: str, what: str) -> int:
    from chalicelib.api.clients import describe

    if args.output != "table":
        emit_json({**describe(record), "key": key})
        return EXIT_OK
    out = console()
    out.print(f"API client {record.client_id} {what}. Its key (shown once; store it in the caller's secret store):")
    out.print(key, highlight=False)
    if record.previous_valid_until and what == "rotated":
        out.print(f"The previous key works until {record.previous_valid_until}.")
    return EXIT_OK


HANDLERS: dict[tuple[str, str | None], Callable[[Any, Any], int]] = {
    ("api-clients", "add"): add,
    ("api-clients", "list"): list_clients,
    ("api-clients", "rotate"): rotate,
    ("api-clients", "revoke"): revoke,
}
