"""Export a backup as plain YAML files that ``kubectl apply -f`` accepts: no lock-in to Lifeboat."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from chalicelib.core.ids import BlobId
from chalicelib.core.manifest import Manifest
from chalicelib.core.trees import CLUSTER_SCOPE, TreeEntry
from chalicelib.repository.errors import ExportError
from chalicelib.repository.reader import RepositoryReader

CLUSTER_DIR = "_cluster"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_LEADING = ("apiVersion", "kind", "metadata")
# Secrets are exported as they are stored; the files are readable by their owner only.
_FILE_MODE = 0o600
_DIR_MODE = 0o700


@dataclass(frozen=True)
class ExportReport:
    directory: str
    objects: int
    files: list[str]  # relative to ``directory``
    bytes_written: int


def export_backup(
    reader: RepositoryReader, manifest: Manifest, to_dir: str | Path, *, overwrite: bool = False
) -> ExportReport:
    """Write every object of ``manifest`` to ``<namespace>/<kind>/<name>.yaml`` (cluster-scoped under ``_cluster``).

    Refuses to write outside ``to_dir`` and, unless ``overwrite``, to replace an existing file.
    """
    import yaml

    root = Path(to_dir)
    root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    root = root.resolve()
    entries = list(reader.walk(manifest))
    paths = _paths(entries)
    by_blob: dict[BlobId, list[tuple[str, TreeEntry, str]]] = {}
    for (scope, entry), rel in zip(entries, paths, strict=True):
        by_blob.setdefault(entry.blob, []).append((scope, entry, rel))

    written: list[str] = []
    total = 0
    where = f"backup {manifest.cluster}/{manifest.backup_id}"
    for blob, data in reader.read_blobs(by_blob, where=where):
        doc = _ordered(orjson.loads(data))
        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True).encode()
        for _scope, _entry, rel in by_blob[blob]:
            _write(root, rel, text, overwrite)
            written.append(rel)
            total += len(text)
    return ExportReport(directory=str(root), objects=len(entries), files=sorted(written), bytes_written=total)


def safe_name(name: str) -> str:
    """A file-name segment: characters outside [A-Za-z0-9._-] become "_", and never "", "." or ".."."""
    cleaned = _UNSAFE.sub("_", name)
    if cleaned.strip(".") == "":
        cleaned = "_" + cleaned
    return cleaned


def _paths(entries: list[tuple[str, TreeEntry]]) -> list[str]:
    """Relative file paths; a kind served by two API groups gets "<kind>.<group>" so neither overwrites the other."""
    groups: dict[tuple[str, str], set[str]] = {}
    for scope, e in entries:
        groups.setdefault((scope, e.kind.lower()), set()).add(e.group)
    paths = []
    for scope, e in entries:
        kind = e.kind.lower()
        if len(groups[(scope, kind)]) > 1 and e.group:
            kind = f"{kind}.{e.group}"
        top = CLUSTER_DIR if scope == CLUSTER_SCOPE else safe_name(scope)
        paths.append(f"{top}/{safe_name(kind)}/{safe_name(e.name)}")
    # Sanitizing can map two names to one ("a:b", "a_b"): keep both by adding the blob id's prefix.
    counts = Counter(paths)
    return [
        f"{p}-{e.blob[:12]}.yaml" if counts[p] > 1 else f"{p}.yaml" for p, (_, e) in zip(paths, entries, strict=True)
    ]


def _ordered(doc: Any) -> Any:
    if not isinstance(doc, dict):
        return doc
    head = {k: doc[k] for k in _LEADING if k in doc}
    return {**head, **{k: v for k, v in doc.items() if k not in head}}


def _write(root: Path, rel: str, text: bytes, overwrite: bool) -> None:
    path = (root / rel).resolve()
    # resolve() follows symlinks already on disk, so a planted link cannot lead a write out of the target.
    if not path.is_relative_to(root):
        raise ExportError(f"refusing to write {rel!r}: it resolves outside {root}")
    path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, _FILE_MODE)
    except FileExistsError as exc:
        raise ExportError(f"refusing to overwrite {path} (pass overwrite=True to replace it)") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(text)
