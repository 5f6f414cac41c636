"""Export a backup as YAML files that ``kubectl apply -R -f`` and ``kubectl apply -k`` take as they are.

``for_="gitops"`` writes only what an author would commit (``core/gitops.py``). The layout and apply order are in
``export_layout.py``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from chalicelib.core.gitops import SecretsMode, for_gitops
from chalicelib.core.ids import BlobId
from chalicelib.core.manifest import Manifest
from chalicelib.core.trees import CLUSTER_SCOPE, TreeEntry
from chalicelib.repository.errors import ExportError
from chalicelib.repository.export_layout import (
    CLUSTER_DIR,
    DEFINITIONS_DIR,
    argocd_applications,
    dump_yaml,
    kustomizations,
    safe_name,
    segment,
    top_dir,
)
from chalicelib.repository.reader import RepositoryReader

__all__ = ["CLUSTER_DIR", "DEFINITIONS_DIR", "ExportReport", "export_backup", "safe_name"]

ExportFor = Literal["kubectl", "gitops"]
EXPORT_FOR: tuple[ExportFor, ...] = ("kubectl", "gitops")
_LEADING = ("apiVersion", "kind", "metadata")
# Secrets may be exported as they are stored; the files are readable by their owner only.
_FILE_MODE = 0o600
_DIR_MODE = 0o700


@dataclass(frozen=True)
class ExportReport:
    directory: str
    objects: int  # objects written
    files: list[str]  # object files, relative to ``directory`` (the Kustomization files are not listed)
    bytes_written: int
    skipped: int = 0  # objects a gitops export leaves out


def export_backup(
    reader: RepositoryReader,
    manifest: Manifest,
    to_dir: str | Path,
    *,
    overwrite: bool = False,
    for_: ExportFor = "kubectl",
    secrets: SecretsMode = "include",
    sealing_key: Any = None,
    argocd_repo: str | None = None,
    argocd_path: str = "",
) -> ExportReport:
    """Write the objects of ``manifest`` under ``to_dir`` (see ``export_layout``) with a ``Kustomization`` per
    namespace directory and one at the root.

    ``secrets="sealed"`` writes each Secret as a SealedSecret for ``sealing_key`` (``core/sealed_secrets.py``).
    ``argocd_repo`` adds ``_argocd/<namespace>.yaml``: an Argo CD Application per namespace directory, with the
    directory at ``argocd_path`` in that repository.
    Refuses to write outside ``to_dir`` and, unless ``overwrite``, to replace an existing file.
    """
    if secrets == "sealed" and sealing_key is None:
        raise ExportError("secrets='sealed' needs the sealed-secrets controller's public key")
    root = Path(to_dir)
    root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    root = root.resolve()
    entries = list(reader.walk(manifest))
    by_blob: dict[BlobId, list[tuple[str, TreeEntry]]] = {}
    for scope, entry in entries:
        by_blob.setdefault(entry.blob, []).append((scope, entry))

    kept: list[tuple[str, TreeEntry, bytes]] = []
    skipped = 0
    where = f"backup {manifest.cluster}/{manifest.backup_id}"
    for blob, data in reader.read_blobs(by_blob, where=where):
        doc = orjson.loads(data)
        if for_ == "gitops":
            doc = for_gitops(doc, secrets=secrets)
        elif secrets == "omit" and isinstance(doc, dict) and doc.get("kind") == "Secret":
            doc = None
        if secrets == "sealed" and isinstance(doc, dict) and doc.get("kind") == "Secret":
            from chalicelib.core.sealed_secrets import seal_secret

            doc = seal_secret(doc, sealing_key)
        if doc is None:
            skipped += len(by_blob[blob])
            continue
        text = dump_yaml(_ordered(doc)).encode()
        kept.extend((scope, entry, text) for scope, entry in by_blob[blob])

    paths = _paths([(scope, entry) for scope, entry, _ in kept])
    total = 0
    for (_scope, _entry, text), rel in zip(kept, paths, strict=True):
        _write(root, rel, text, overwrite)
        total += len(text)
    extra = kustomizations(paths)
    if argocd_repo:
        extra.update(argocd_applications(paths, argocd_repo, argocd_path))
    for rel, text_str in extra.items():
        _write(root, rel, text_str.encode(), overwrite)
    return ExportReport(
        directory=str(root), objects=len(kept), files=sorted(paths), bytes_written=total, skipped=skipped
    )


def _paths(entries: list[tuple[str, TreeEntry]]) -> list[str]:
    """Relative file paths; a kind served by two API groups gets "<kind>.<group>" so neither overwrites the other."""
    groups: dict[tuple[str, str], set[str]] = {}
    tops = [top_dir(scope, e.group, e.kind, CLUSTER_SCOPE) for scope, e in entries]
    for top, (_, e) in zip(tops, entries, strict=True):
        groups.setdefault((top, e.kind.lower()), set()).add(e.group)
    paths = []
    for top, (_, e) in zip(tops, entries, strict=True):
        kind = e.kind.lower()
        if len(groups[(top, kind)]) > 1 and e.group:
            kind = f"{kind}.{e.group}"
        paths.append(f"{top}/{segment(kind)}/{segment(e.name)}")
    # Two names could still meet in one segment (a hash prefix shared): keep both by adding the blob id's prefix.
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
