"""The README's main job: the product's own functions on the emulated AWS and the local Kubernetes API
(``sandbox/product.py``), then one summary of what ran and the path of the HTML report."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from chalicelib.cli.output import EXIT_ERROR, EXIT_OK, console, emit_json, human_bytes, table
from sandbox.environment import running_sandbox


def run_demo(*, keep: bool = False, output: str = "table") -> int:
    # Structured logs and EMF metrics are for CloudWatch; the demo prints its own summary (and JSON stays JSON).
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from sandbox.product import run_product

    out = console()
    say = (lambda msg: out.print(f"[dim]·[/dim] {msg}", highlight=False)) if output == "table" else (lambda msg: None)
    workdir = Path(tempfile.mkdtemp(prefix="lifeboat-sandbox-"))
    started = time.monotonic()
    with running_sandbox(workdir) as sandbox:
        say(f"emulated AWS at {sandbox.aws_endpoint}, Kubernetes API at {sandbox.kube.url}")
        result = run_product(sandbox, workdir, say=say)
        result["duration_s"] = round(time.monotonic() - started, 2)
        if output == "json":
            emit_json(result)
        else:
            print_summary(out, result)
        if keep:
            out.print("sandbox running; in another shell:")
            for key, value in sandbox.env().items():
                out.print(f"  export {key}={value}")
            out.print("press Ctrl-C to stop")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return EXIT_OK if result["ok"] else EXIT_ERROR


def print_summary(out: Any, result: dict[str, Any]) -> None:
    backups = {b["backup_id"]: b for b in result["backups"]}
    rows = []
    for s in result["steps"]:
        b = backups.get(s.get("backup_id", ""))
        if b is not None:
            what = (
                f"{b['state']}: {b['objects']} objects, {human_bytes(b['bytes_uploaded'])} uploaded, "
                f"volumes {', '.join(b['volume_snapshots']) or 'none'}; replica {b['replica']}"
            )
        elif s["step"] == "verification":
            what = f"{s['state']}: RTO {s['rto_s']} s ({result['verification']['verification_id']})"
        elif s["step"] == "replication":
            what = f"{', '.join(s['states'])} in {s['region']}"
        elif s["step"].startswith("restore"):
            r = result["restore"]
            counts = ", ".join(f"{k} {v}" for k, v in (r.get("counts") or {}).items() if v)
            what = f"{r['state']} ({counts}) into {', '.join(r['namespaces'].values())}"
        else:
            what = s.get("detail", "")
        rows.append([s["step"], what, f"{s['seconds']:.2f} s"])
    out.print(table("Lifeboat sandbox: what ran", ["step", "result", "time"], rows))
    copies = result["copies"]
    if copies:
        c = copies[0]
        out.print(
            f"3-2-1: {c.get('copies')} copies, {c.get('kinds')} kinds of storage, off-region "
            f"{'yes' if c.get('off_region') else 'no'} ({'; '.join(c.get('problems') or []) or 'rule met'}; "
            "counted after the primary bucket was lost)",
            highlight=False,
        )
    rpo, verification = result["rpo"], result["verification"]
    out.print(
        f"RPO {rpo['minutes']:.2f} min (target {rpo['target_minutes']}); RTO {verification['rto_s']} s measured by the "
        "verification run",
        highlight=False,
    )
    calls = ", ".join(f"{fn} {n}" for fn, n in result["invocations"].items())
    out.print(f"functions invoked through their queues: {calls}", highlight=False)
    out.print(f"HTML report: {result['report']}", highlight=False)
    out.print(f"total {result['duration_s']:.1f} s; {'all steps passed' if result['ok'] else 'SOME STEPS FAILED'}")
