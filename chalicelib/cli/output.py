"""Rendering for the CLI: rich tables for people, JSON for scripts."""

from __future__ import annotations

import sys
from typing import Any

import orjson

# Exit codes scripts can trust.
EXIT_OK = 0
EXIT_ERROR = 1  # failed backup/restore, unknown id, unreachable service, corrupt repository
EXIT_USAGE = 2  # bad arguments (argparse uses 2 as well)
EXIT_PARTIAL = 3  # finished, but some objects or resource types failed


FORMATS = ("table", "json", "yaml")
_format = "json"  # what emit_json writes: set from ``-o`` by the CLI's entry point


def set_data_format(fmt: str) -> None:
    """``-o json`` or ``-o yaml``: the format of the machine-readable output every read command writes."""
    global _format
    _format = "yaml" if fmt == "yaml" else "json"


def emit_json(data: Any) -> None:
    """``data`` as JSON (or YAML, with ``-o yaml``): the same document either way, as JSON types."""
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    if _format == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(orjson.loads(text), sort_keys=False, allow_unicode=True))
        return
    sys.stdout.write(text.decode() + "\n")


def console() -> Any:
    from rich.console import Console

    # Piped output (CI logs, files) gets a readable width instead of rich's 80-column fallback.
    return Console() if sys.stdout.isatty() else Console(width=120)


def err_console() -> Any:
    from rich.console import Console

    # An error is one sentence: soft wrapping keeps it on one line, so a script's log shows it whole.
    return Console(stderr=True, soft_wrap=True)


def location(store: Any) -> str:
    """Where a repository is, for messages: ``s3://bucket/prefix`` (not an object's repr)."""
    bucket = getattr(store, "bucket", None)
    return f"s3://{bucket}/{getattr(store, 'prefix', '')}" if bucket else str(store)


def read_kubeconfig(path: str) -> str:
    """The kubeconfig file's text, or CliError naming the file and why it cannot be read."""
    from pathlib import Path

    try:
        return Path(path).read_text()
    except OSError as exc:
        hint = "set --kubeconfig or KUBECONFIG"
        raise CliError(f"cannot read the kubeconfig {path}: {exc.strerror or exc} ({hint})") from exc


class CliError(Exception):
    """A failure the CLI explains in one sentence (what and where); exit 1."""


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Any:
    from rich.table import Table

    t = Table(title=title)
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*[str(c) if c is not None else "-" for c in row])
    return t


def human_bytes(n: int | float) -> str:
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
