"""``lifeboat cost estimate``: a monthly estimate from a cluster's shape and a policy, itemised by AWS service."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from chalicelib.cli.output import EXIT_OK, CliError, console, emit_json, table


def add_parser(sub: Any, add_aws_options: Any) -> None:
    from chalicelib.scheduling.clusters import REGISTRABLE

    cost = sub.add_parser("cost", help="what protecting a cluster costs a month").add_subparsers(
        dest="action", required=True
    )
    p = cost.add_parser("estimate", help="a monthly estimate itemised by AWS service (list prices)")
    add_aws_options(p)
    p.set_defaults(lazy_services=True)  # the catalog is read only with --from-cluster
    p.add_argument("--from-cluster", default=None, metavar="NAME", help="read the shape from NAME's last backups")
    p.add_argument(
        "--auth",
        choices=sorted(REGISTRABLE),
        default=None,
        help="how the cluster is registered: eks (IAM, no secret; the default) or a Secrets Manager secret; "
        "--from-cluster reads it from the registration",
    )
    p.add_argument("--objects", type=int, default=10000)
    p.add_argument("--avg-object-bytes", type=int, default=4096)
    p.add_argument("--change-rate", type=float, default=0.01, help="fraction of objects changed per run")
    p.add_argument("--namespaces", type=int, default=20)
    p.add_argument("--pvcs", type=int, default=0)
    p.add_argument("--pvc-gib", type=float, default=0.0, help="average PVC size")
    p.add_argument("--pvc-change-rate", type=float, default=0.02)
    p.add_argument("--etcd-mib", type=float, default=0.0)
    p.add_argument("--dump-mib", type=float, default=0.0)
    p.add_argument("--runs-per-day", type=float, default=24.0)
    p.add_argument("--retention-runs", type=int, default=48)
    p.add_argument("--replica", action="store_true", help="replicate to a second region")
    p.add_argument("--replications-per-day", type=float, default=1.0)
    p.add_argument("--verifications-per-month", type=float, default=4.0)
    p.add_argument("--no-ebs", action="store_true", help="no EBS snapshots of the PVCs")
    p.add_argument("--storage-class", choices=("standard", "standard_ia", "glacier_ir"), default="standard")
    p.add_argument("--prices", type=Path, default=None, metavar="FILE", help="JSON object overriding prices")
    p.add_argument("--with-fixed", action="store_true", help="add the deployment's fixed costs")


def _prices(path: Path | None) -> dict[str, Any]:
    import orjson

    from chalicelib.core.cost.prices import PRICES, InvalidPrices, with_overrides

    if path is None:
        return dict(PRICES)
    try:
        overrides = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise CliError(f"cannot read the price file {path}: {exc.strerror or exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise CliError(f"the price file {path} is not JSON: {exc}") from exc
    if not isinstance(overrides, dict):
        raise CliError(f"the price file {path} must hold a JSON object of price names to numbers")
    try:
        return with_overrides(overrides)
    except InvalidPrices as exc:
        raise CliError(f"{path}: {exc}") from exc


def _shape(args: argparse.Namespace) -> Any:
    from chalicelib.core.cost.model import ClusterShape, shape_from_backups

    if args.from_cluster is None:
        return ClusterShape(
            objects=args.objects,
            avg_object_bytes=args.avg_object_bytes,
            change_rate=args.change_rate,
            namespaces=args.namespaces,
            pvcs=args.pvcs,
            pvc_gib=args.pvc_gib,
            pvc_change_rate=args.pvc_change_rate,
            etcd_mib=args.etcd_mib,
            dump_mib=args.dump_mib,
            auth=args.auth or "eks",
        )
    import dataclasses

    from chalicelib.cli.main import _services
    from chalicelib.core.models import BackupState

    services = _services(args)
    records, _ = services.catalog().list(args.from_cluster, limit=25, states=[BackupState.COMPLETED])
    records = [r for r in records if not r.etcd_only]
    if not records:
        raise CliError(f"cluster {args.from_cluster!r} has no completed backups to read its shape from")
    shape = shape_from_backups(records)
    auth = args.auth or _registered_auth(services, args.from_cluster) or "eks"
    return dataclasses.replace(shape, pvcs=args.pvcs, pvc_gib=args.pvc_gib, etcd_mib=args.etcd_mib, auth=auth)


def _registered_auth(services: Any, cluster: str) -> str | None:
    """The auth kind of the cluster's registration; None for a cluster only seen in backups."""
    from chalicelib.catalog.errors import RecordNotFound

    try:
        auth = services.cluster_catalog().get(cluster).auth
    except RecordNotFound:
        return None
    return str(auth["type"]) if auth else None


def estimate(args: argparse.Namespace, services: Any) -> int:
    from chalicelib.core.cost.model import Estimate, PolicyShape, estimate, fixed

    prices = _prices(args.prices)
    shape = _shape(args)
    policy = PolicyShape(
        runs_per_day=args.runs_per_day,
        retention_runs=args.retention_runs,
        replica=args.replica,
        replications_per_day=args.replications_per_day,
        verifications_per_month=args.verifications_per_month,
        ebs_snapshots=not args.no_ebs,
        storage_class=args.storage_class,
    )
    result = estimate(shape, policy, prices)
    if args.with_fixed:
        result = Estimate(result.lines + fixed(prices).lines, result.prices)
    if args.output == "json":
        doc = result.to_json()
        doc["shape"] = dataclasses_dict(shape)
        doc["policy"] = dataclasses_dict(policy)
        emit_json(doc)
        return EXIT_OK
    rows = [
        [line.service, line.item, f"{line.quantity:,.2f}", line.unit, f"${line.usd:,.4f}"]
        for line in result.lines
        if line.quantity
    ]
    out = console()
    title = f"monthly estimate, {shape.objects:,} objects, {policy.runs_per_day:g} runs a day"
    out.print(table(title, ["service", "item", "quantity", "unit", "USD"], rows))
    for service, usd in result.by_service().items():
        out.print(f"{service:<16} ${usd:,.2f}", highlight=False)
    out.print(f"{'total':<16} ${result.total:,.2f} a month", highlight=False)
    out.print(
        f"prices: {prices['region']} list prices, taken {prices['taken']} from {prices['source']}", highlight=False
    )
    return EXIT_OK


def dataclasses_dict(value: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(value)


HANDLERS: dict[tuple[str, str | None], Any] = {("cost", "estimate"): estimate}
