"""The protection report as one static HTML page: per policy, RPO and RTO over time against their targets, the latest
verification's phases and failures, and the 3-2-1 status. No server, no CDN: the charts are inline SVG, the styles
inline CSS, so the file opens anywhere (and from an archive years later) exactly as written.

Every figure is also an element with a ``data-value`` attribute and a class naming it, so a test (or a script) can
read the numbers back from the rendered page.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_WIDTH, _HEIGHT, _PAD = 560, 180, 36


@dataclass(frozen=True)
class Point:
    at: str  # ISO-8601 UTC
    minutes: float


@dataclass(frozen=True)
class PolicyReport:
    name: str
    cluster: str
    rpo_minutes: float  # now: the age of the newest Completed backup
    rpo_target_minutes: int | None
    rpo_points: tuple[Point, ...]  # per Completed backup: how old the previous one was when it finished
    rto_target_minutes: int | None
    rto_points: tuple[Point, ...]  # per passed verification: its RTO
    verification: dict[str, Any] | None  # the latest ended run (VerificationRecord as a dict)
    copies: dict[str, Any] | None  # the 3-2-1 verdict of the latest backup (replication.report.assess)


@dataclass(frozen=True)
class Report:
    generated_at: str
    policies: tuple[PolicyReport, ...] = field(default_factory=tuple)


def render(report: Report) -> str:
    body = "".join(_policy(p) for p in report.policies) or "<p class='empty'>No policies.</p>"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Lifeboat protection report {_e(report.generated_at)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>Protection report</h1><p>Generated {_e(report.generated_at)} from the catalog; "
        f"{len(report.policies)} policies.</p></header>{_summary(report.policies)}{body}</body></html>"
    )


def _summary(policies: Sequence[PolicyReport]) -> str:
    rows = []
    for p in policies:
        v = p.verification or {}
        rows.append(
            "<tr>"
            f"<td>{_e(p.name)}</td><td>{_e(p.cluster)}</td>"
            f"{_figure('rpo-current', p.rpo_minutes, p.rpo_target_minutes)}"
            f"<td>{_target(p.rpo_target_minutes)}</td>"
            f"{_figure('rto-latest', _rto_minutes(v), p.rto_target_minutes)}"
            f"<td>{_target(p.rto_target_minutes)}</td>"
            f"<td class='state {_e(str(v.get('state', 'none')).lower())}'>{_e(v.get('state') or 'never verified')}</td>"
            f"{_rule(p.copies)}</tr>"
        )
    return (
        "<section><h2>Summary</h2><table class='summary'><thead><tr><th>Policy</th><th>Cluster</th>"
        "<th>RPO now</th><th>RPO target</th><th>Latest RTO</th><th>RTO target</th><th>Verification</th>"
        f"<th>3-2-1</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _policy(p: PolicyReport) -> str:
    return (
        f"<section class='policy' data-policy='{_e(p.name)}'><h2>{_e(p.name)} <small>{_e(p.cluster)}</small></h2>"
        "<div class='charts'>"
        f"{_chart('RPO over time (minutes)', 'rpo', p.rpo_points, p.rpo_target_minutes)}"
        f"{_chart('RTO of each passed verification (minutes)', 'rto', p.rto_points, p.rto_target_minutes)}"
        f"</div>{_verification(p.verification)}{_copies(p.copies)}</section>"
    )


def _chart(title: str, kind: str, points: Sequence[Point], target: int | None) -> str:
    if not points:
        return f"<figure class='chart {kind}'><figcaption>{_e(title)}</figcaption><p>No data yet.</p></figure>"
    times = [_epoch(p.at) for p in points]
    t0, t1 = min(times), max(times)
    top = max([p.minutes for p in points] + ([target] if target else [])) * 1.15 or 1.0

    def x(t: float) -> float:
        return _PAD + (0.5 if t1 == t0 else (t - t0) / (t1 - t0)) * (_WIDTH - 2 * _PAD)

    def y(v: float) -> float:
        return _HEIGHT - _PAD - (v / top) * (_HEIGHT - 2 * _PAD)

    coords = [(x(t), y(p.minutes)) for t, p in zip(times, points, strict=True)]
    line = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
    dots = "".join(
        f"<circle class='point' cx='{cx:.1f}' cy='{cy:.1f}' r='3.5' data-at='{_e(p.at)}' data-value='{p.minutes:.2f}'>"
        f"<title>{_e(p.at)}: {p.minutes:.1f} min</title></circle>"
        for (cx, cy), p in zip(coords, points, strict=True)
    )
    target_line = ""
    if target:
        ty = y(target)
        target_line = (
            f"<line class='target' x1='{_PAD}' x2='{_WIDTH - _PAD}' y1='{ty:.1f}' y2='{ty:.1f}' "
            f"data-value='{target}'></line><text x='{_WIDTH - _PAD}' y='{ty - 4:.1f}' text-anchor='end' "
            f"class='label'>target {target} min</text>"
        )
    axes = (
        f"<line class='axis' x1='{_PAD}' y1='{_HEIGHT - _PAD}' x2='{_WIDTH - _PAD}' y2='{_HEIGHT - _PAD}'></line>"
        f"<line class='axis' x1='{_PAD}' y1='{_PAD / 2}' x2='{_PAD}' y2='{_HEIGHT - _PAD}'></line>"
        f"<text class='label' x='{_PAD}' y='{_HEIGHT - 8}'>{_e(points[0].at[:10])}</text>"
        f"<text class='label' x='{_WIDTH - _PAD}' y='{_HEIGHT - 8}' text-anchor='end'>{_e(points[-1].at[:10])}</text>"
        f"<text class='label' x='4' y='{_PAD / 2 + 10}'>{top:.0f}</text>"
    )
    return (
        f"<figure class='chart {kind}'><figcaption>{_e(title)}</figcaption>"
        f"<svg viewBox='0 0 {_WIDTH} {_HEIGHT}' width='{_WIDTH}' height='{_HEIGHT}' role='img' "
        f"aria-label='{_e(title)}'>{axes}{target_line}<polyline class='series' points='{line}'></polyline>{dots}"
        "</svg></figure>"
    )


def _verification(v: dict[str, Any] | None) -> str:
    if not v:
        return "<div class='verification'><h3>Latest verification</h3><p>Never verified.</p></div>"
    phases = v.get("phases") or {}
    total = sum(phases.values()) or 1.0
    bars = "".join(
        f"<div class='phase' style='width:{max(2.0, 100 * s / total):.1f}%' data-phase='{_e(name)}' "
        f"data-value='{s:.3f}' title='{_e(name)} {s:.1f} s'>{_e(name)} {s:.1f} s</div>"
        for name, s in phases.items()
    )
    problems = "".join(f"<li>{_e(str(p.get('problem', '')))}</li>" for p in (v.get("problems") or [])[:20])
    more = int(v.get("problems_total") or 0) - min(20, len(v.get("problems") or []))
    if more > 0:
        problems += f"<li>… and {more} more</li>"
    message = f"<p class='message'>{_e(v['message'])}</p>" if v.get("message") else ""
    return (
        f"<div class='verification' data-verification='{_e(v.get('verification_id', ''))}'>"
        f"<h3>Latest verification: <span class='state {_e(str(v.get('state', '')).lower())}'>"
        f"{_e(v.get('state', ''))}</span></h3><p>Backup {_e(v.get('backup_id') or '-')} restored into "
        f"{_e(v.get('target_cluster', ''))} at {_e(v.get('created_at', ''))}; {int(v.get('checked') or 0)} objects "
        f"checked.</p><div class='phases'>{bars}</div>{message}"
        + (f"<ul class='problems'>{problems}</ul>" if problems else "")
        + "</div>"
    )


def _copies(c: dict[str, Any] | None) -> str:
    if not c:
        return "<div class='copies'><h3>3-2-1</h3><p>No committed backup.</p></div>"
    where = ", ".join(
        f"{loc['name']} ({loc['kind']}{', ' + loc['region'] if loc.get('region') else ''})"
        for loc in c.get("locations", [])
    )
    problems = "; ".join(c.get("problems") or [])
    copies, kinds = int(c.get("copies", 0)), int(c.get("kinds", 0))
    return (
        f"<div class='copies'><h3>3-2-1: {'met' if c.get('rule_ok') else 'not met'}</h3>"
        f"<p><span class='copies-count' data-value='{copies}'>{copies}</span> {'copy' if copies == 1 else 'copies'} "
        f"on <span class='kinds-count' data-value='{kinds}'>{kinds}</span> "
        f"{'kind' if kinds == 1 else 'kinds'} of storage: {_e(where)}.</p>"
        + (f"<p class='message'>{_e(problems)}</p>" if problems else "")
        + "</div>"
    )


def _figure(cls: str, minutes: float | None, target: int | None) -> str:
    if minutes is None:
        return f"<td class='{cls}'>-</td>"
    over = " over" if target is not None and minutes > target else ""
    return f"<td class='{cls}{over}' data-value='{minutes:.2f}'>{minutes:.1f} min</td>"


def _rule(c: dict[str, Any] | None) -> str:
    if not c:
        return "<td class='rule'>-</td>"
    ok = bool(c.get("rule_ok"))
    return f"<td class='rule {'ok' if ok else 'over'}' data-value='{int(ok)}'>{'met' if ok else 'not met'}</td>"


def _target(minutes: int | None) -> str:
    return f"{minutes} min" if minutes else "-"


def _rto_minutes(v: dict[str, Any]) -> float | None:
    rto = v.get("rto_s")
    return None if rto is None else float(rto) / 60


def _epoch(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1f2933;background:#fafbfc}
h1{margin:0 0 4px}header p{color:#52606d;margin:0 0 16px}
section{background:#fff;border:1px solid #d9e2ec;border-radius:8px;padding:16px;margin-bottom:16px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e7eb}
td.over,.state.failed{color:#c81e1e;font-weight:600}td.ok,.state.succeeded{color:#127c3a;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}figcaption{font-weight:600;margin-bottom:4px}
svg{background:#f5f7fa;border-radius:4px}.series{fill:none;stroke:#2563eb;stroke-width:2}
.point{fill:#2563eb}.target{stroke:#c81e1e;stroke-dasharray:6 4;stroke-width:1.5}.axis{stroke:#9aa5b1}
.label{font-size:11px;fill:#52606d}.phases{display:flex;height:26px;margin:8px 0;border-radius:4px;overflow:hidden}
.phase{background:#60a5fa;color:#0b2545;font-size:12px;line-height:26px;padding:0 6px;white-space:nowrap;
overflow:hidden;border-right:2px solid #fff}.phase:nth-child(2){background:#34d399}
.phase:nth-child(3){background:#fbbf24}.phase:nth-child(4){background:#c4b5fd}.problems{color:#c81e1e}.message{color:#7b5a00}
"""
